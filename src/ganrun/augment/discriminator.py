"""D behind an input augmentation: every image D sees, real or generated, is augmented first."""

from __future__ import annotations

from torch import Tensor, nn


class AugmentedDiscriminator(nn.Module):
    """D(augment(x)). The wrapped D is `.module`, so checkpoints store the plain D."""

    def __init__(self, module: nn.Module, augment: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.augment = augment

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        return self.module(self.augment(x), *args, **kwargs)

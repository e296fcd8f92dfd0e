"""D behind an input augmentation: every image D sees, real or generated, is augmented first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import Tensor, nn


class TunesOnRealLogits(Protocol):
    """An augmentation whose strength follows D's logits on reals (ADA's p): the GAN method
    hands it every D step's real logits and logs what it returns (aug/p, aug/rt)."""

    def observe_real_logits(self, logits: Tensor) -> dict[str, Tensor]: ...


class AugmentedDiscriminator(nn.Module):
    """D(augment(x)). The wrapped D is `.module`, so checkpoints store the plain D."""

    def __init__(self, module: nn.Module, augment: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.augment = augment

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        return self.module(self.augment(x), *args, **kwargs)


def real_logit_observer(D: nn.Module) -> Callable[[Tensor], dict[str, Tensor]] | None:
    """`observe_real_logits` of D's augmentation when it has one (TunesOnRealLogits), else None
    (no augmentation, DiffAugment: nothing is collected). D: AugmentedDiscriminator, possibly
    compiled (attributes pass through); unwrap DDP first (local_module)."""
    return getattr(getattr(D, "augment", None), "observe_real_logits", None)

"""Blocks and initialisations shared by the architecture files."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganrun.errors import GanrunError


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights for conv/linear layers and N(1, 0.02) BatchNorm scales (Radford et al.)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def dropout_layers(p: float) -> list[nn.Module]:
    """[Dropout(p)] when p > 0, else nothing (so p=0 leaves a model's layers unchanged)."""
    return [nn.Dropout(p)] if p else []


def replace_batchnorm(module: nn.Module, make: Callable[[nn.Module], nn.Module]) -> list[nn.Module]:
    """Swap every BatchNorm inside `module` for make(bn); returns the new layers in order."""
    replaced = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                new = make(child)
                setattr(parent, name, new)
                replaced.append(new)
    return replaced


def spectral_norm_all(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every conv and linear layer of `module`."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(layer)
    return module


def image_shape(data_shape: tuple[int, ...], model: str) -> tuple[int, int]:
    """(channels, resolution) of square image data, or a clear error for points or odd sizes."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise GanrunError(
            f"model={model} needs square images (C, H, H) but the dataset gives samples of shape "
            f"{tuple(data_shape)}. Use model=mlp for 2-D point datasets (ring8, grid25), or pick "
            f"an image dataset."
        )
    return data_shape[0], data_shape[1]


def upsampling_plan(resolution: int, model: str) -> tuple[int, int]:
    """(start size, number of x2 stages) so that start * 2**stages == resolution, start in {4, 7}.

    4 covers the powers of two (16, 32, 64, 128...), 7 covers MNIST's 28.
    """
    for start in (4, 7):
        stages = math.log2(resolution / start)
        if stages >= 1 and stages == int(stages):
            return start, int(stages)
    raise GanrunError(
        f"model={model} cannot build images of resolution {resolution}: it doubles a 4x4 or 7x7 "
        f"map, so the resolution must be 4 or 7 times a power of two (16, 28, 32, 64, 128...). "
        f"Set dataset.resolution to one of those."
    )


class SelfAttention(nn.Module):
    """SAGAN's self-attention block (Zhang et al. 2019; BigGAN): x + gamma * o(attend(x)).

    Queries at every position, keys and values max-pooled by 2 (SAGAN/BigGAN: 4x fewer
    pairs), channels c/8 for queries and keys and c/2 for values. gamma starts at 0, so a
    fresh block is the identity and the network first learns without attention; it needs
    an even-sized input of at least 2x2. No biases (BigGAN). Spectral norm comes from the
    model's sn_g / sn_d like every other conv.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        key, value = max(channels // 8, 1), max(channels // 2, 1)
        self.theta = nn.Conv2d(channels, key, 1, bias=False)  # queries
        self.phi = nn.Conv2d(channels, key, 1, bias=False)  # keys
        self.g = nn.Conv2d(channels, value, 1, bias=False)  # values
        self.o = nn.Conv2d(value, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.theta(x).flatten(2)  # (B, c/8, HW)
        key = F.max_pool2d(self.phi(x), 2).flatten(2)  # (B, c/8, HW/4)
        value = F.max_pool2d(self.g(x), 2).flatten(2)  # (B, c/2, HW/4)
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)  # (B, HW, HW/4)
        out = (value @ attention.transpose(1, 2)).view(b, -1, h, w)
        return x + self.gamma * self.o(out)

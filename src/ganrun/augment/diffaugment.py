"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020).

The same random transform family is applied to real and generated images, in D's steps
and in G's step, so D never sees un-augmented data and G is not pushed to produce
augmented-looking images. Useful when the dataset is small (digits: 1,797 images).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.errors import GanrunError


def brightness(x: Tensor) -> Tensor:
    return x + (torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def saturation(x: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (
        torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5
    ) + mean


def color(x: Tensor) -> Tensor:
    """Random brightness, saturation and contrast per image."""
    return contrast(saturation(brightness(x)))


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ratio * size pixels, filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    iy = torch.arange(h, device=x.device).view(1, h, 1)
    ix = torch.arange(w, device=x.device).view(1, 1, w)
    gy = (iy + dy).clamp(-1, h)  # -1 and h index the zero padding
    gx = (ix + dx).clamp(-1, w)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, gy + 1, gx + 1].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a random square of ratio * size per image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    iy = torch.arange(h, device=x.device).view(1, h, 1)
    ix = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (iy >= oy) & (iy < oy + ch) & (ix >= ox) & (ix < ox + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment(nn.Module):
    """Applies the ops in `policy` (any of color, translation, cutout) in order."""

    def __init__(self, policy: Sequence[str] = ("color", "translation", "cutout")) -> None:
        super().__init__()
        unknown = [p for p in policy if p not in OPS]
        if unknown:
            raise GanrunError(
                f"augment.policy has unknown op(s) {unknown}; valid ops: {', '.join(OPS)}."
            )
        self.ops = [OPS[p] for p in policy]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise GanrunError(
                "augment=diffaugment works on images; this dataset gives 2-D points. "
                "Drop the augment option for ring8/grid25."
            )
        for op in self.ops:
            x = op(x)
        return x

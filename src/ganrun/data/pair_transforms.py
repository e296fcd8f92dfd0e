"""The random crop and flip of pix2pix, shared by the two images of a pair.

pix2pix loads each pair at `load_size` (286) and takes one random `crop` (256) window and one
coin flip for both images: a crop or flip applied to only one side would teach G a shift that
is not in the data. Here the draws for batch k come from a CPU generator seeded with
mixed_seed(seed, k), never from the global RNG, so batch k stays a pure function of
(seed, k) (exact resume) and the default run's RNG stream is untouched.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganrun.data.base import mixed_seed
from ganrun.errors import GanrunError


def crop_windows(x: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """x (B, C, H, W) -> the size x size window at (top[i], left[i]) of each image i."""
    b, c = x.shape[:2]
    rows = (top.to(x.device)[:, None] + torch.arange(size, device=x.device))[:, None, :, None]
    cols = (left.to(x.device)[:, None] + torch.arange(size, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return x[batch, chan, rows, cols]


def centre_crop(x: Tensor, size: int) -> Tensor:
    """The centred size x size window of every image (the test split's deterministic crop)."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


class SharedCropFlip:
    """transform(a, b, k): one random window and one horizontal flip per pair, the same for a
    and b (which must share H and W). crop=None keeps the full image; flip=False never flips."""

    def __init__(self, crop: int | None, flip: bool, seed: int = 0) -> None:
        self.crop, self.flip, self.seed = crop, flip, seed

    def check(self, height: int, width: int, key: str = "dataset.crop") -> None:
        if self.crop is not None and not 1 <= self.crop <= min(height, width):
            raise GanrunError(
                f"{key}={self.crop} does not fit the {height}x{width} loaded images; use a crop "
                f"of at most {min(height, width)} px (or raise dataset.load_size)."
            )

    def draws(self, n: int, height: int, width: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """(top, left, flip) for the n pairs of batch k: pure functions of (seed, k)."""
        gen = torch.Generator().manual_seed(mixed_seed(mixed_seed(self.seed, 2), k))
        size = self.crop or min(height, width)
        top = torch.randint(height - size + 1, (n,), generator=gen)
        left = torch.randint(width - size + 1, (n,), generator=gen)
        flip = torch.rand(n, generator=gen) < 0.5
        return top, left, flip & self.flip

    def __call__(self, a: Tensor, b: Tensor, k: int) -> tuple[Tensor, Tensor]:
        if a.shape[-2:] != b.shape[-2:]:
            raise ValueError(f"paired images differ in size: {tuple(a.shape)} vs {tuple(b.shape)}")
        h, w = a.shape[-2:]
        top, left, flip = self.draws(len(a), h, w, k)
        out = []
        for x in (a, b):
            if self.crop is not None:
                x = crop_windows(x, top, left, self.crop)
            mask = flip.to(x.device)[:, None, None, None]
            out.append(torch.where(mask, x.flip(-1), x))
        return out[0], out[1]

"""Pictures a run or `ganrun sample` writes: image grids and 2-D scatter plots.

Every writer is deterministic (same tensors, same bytes) and atomic (ganrun.atomic_io), so a
crash never leaves a half-written file and two samplings with one seed compare equal.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganrun.atomic_io import atomic_write


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (N, C, H, W) -> uint8 (N, C, H, W), rounding to the nearest level."""
    return images.detach().float().cpu().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def tile(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """(N, C, H, W) -> one (C, rows*(H+p)+p, nrow*(W+p)+p) image, row by row, with `padding`
    black pixels around each: torchvision's make_grid layout (pad value 0; one image is
    returned as it is, as make_grid does), without importing torchvision (its models alone
    cost ~1 s of start-up)."""
    n, c, h, w = images.shape
    if n == 1:
        return images[0]
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = images.new_zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for i, image in enumerate(images):
        y, x = divmod(i, cols)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = image
    return grid


def save_grid(images: torch.Tensor, path: str | Path) -> None:
    """A square-ish grid PNG of [-1, 1] images (N, C, H, W)."""
    atomic_write(path, png_bytes(grid_image(images)))


def grid_image(images: torch.Tensor) -> np.ndarray:
    """The square-ish grid of [-1, 1] images (N, C, H, W) as uint8 (H, W) or (H, W, C): the
    pixels of save_grid's PNG, which videos reuse frame by frame."""
    grid = tile(to_uint8(images), nrow=max(1, math.ceil(math.sqrt(images.shape[0]))))
    array = grid.permute(1, 2, 0).numpy()
    return array[..., 0] if images.shape[1] == 1 else array


def save_scatter(points: torch.Tensor, path: str | Path, size: int = 512) -> None:
    """A scatter PNG of 2-D points, the axes fitted to the points with a 5% margin."""
    atomic_write(path, png_bytes(scatter_image(points, size)))


def scatter_image(
    points: torch.Tensor, size: int = 512, bounds: torch.Tensor | None = None
) -> np.ndarray:
    """The scatter plot of 2-D points as an RGB array (size, size, 3). `bounds` (2, 2: the
    lowest and highest x, y to show; default the points' own) keeps the axes still across
    the frames of a video."""
    pts = points.detach().float().cpu()
    box = pts if bounds is None else bounds.float()
    lo, hi = box.min(0).values, box.max(0).values
    span = (hi - lo).max().clamp_min(1e-6) * 1.1
    centre = (hi + lo) / 2
    pix = ((pts - centre) / span + 0.5) * (size - 1)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    for x, y in pix.tolist():
        y = size - 1 - y
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(31, 119, 180))
    return np.asarray(img)


def save_samples(samples: torch.Tensor, path: str | Path) -> None:
    """Images become a grid, 2-D points a scatter plot."""
    (save_grid if samples.dim() == 4 else save_scatter)(samples, path)

"""The frames of `ganrun video kind=translate`: a translation run's inputs dissolving into its
outputs and back, on a loop.

A translator has no latent space to walk; what people want to see is what it changed, and a
dissolve between the input grid and the output grid shows exactly that (edges filling in,
colour appearing). The inputs and outputs are `ganrun translate`'s own (translations.npz), so
the still at the turn of the loop is that command's output. Inputs of another size or channel
count (super-resolution, colorization) are brought to the outputs' first: nearest-neighbour
resizing, grey repeated to RGB.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganrun.data.base import from_uint8
from ganrun.sampling.images import grid_image
from ganrun.sampling.interpolate import ease
from ganrun.sampling.video_io import as_rgb


def _grid(nhwc: np.ndarray, size: tuple[int, int], scale: int) -> np.ndarray:
    """uint8 NHWC images -> the RGB grid of them at `size` (H, W) each, upscaled by `scale`."""
    images = torch.from_numpy(np.ascontiguousarray(nhwc)).permute(0, 3, 1, 2)
    if tuple(images.shape[2:]) != size:
        images = F.interpolate(images.float(), size=size, mode="nearest").round().to(torch.uint8)
    return as_rgb(grid_image(from_uint8(images)), scale)


def dissolve_frames(
    inputs: np.ndarray, outputs: np.ndarray, frames: int, scale: int = 1
) -> list[np.ndarray]:
    """2 * frames RGB frames: inputs -> outputs (frame `frames` is the output grid exactly)
    -> back to the inputs, eased into each end."""
    size = tuple(outputs.shape[1:3])
    a = _grid(inputs, size, scale).astype(np.float32)
    b = _grid(outputs, size, scale).astype(np.float32)
    out = []
    for f in range(2 * frames):
        t = ease(f / frames) if f < frames else ease(2 - f / frames)
        out.append(np.rint((1 - t) * a + t * b).astype(np.uint8))
    return out

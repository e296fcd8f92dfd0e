"""The embedded default: UCI's 8x8 handwritten digits (1,797 images, 10 classes).

They ship inside the scikit-learn wheel, so `ganrun train` works on a fresh offline machine.
The 0..16 grey levels are scaled to 0..255 and upscaled to `resolution`.
"""

from __future__ import annotations

import torch

from ganrun.data.base import InMemoryImages, resize_uint8


class Digits(InMemoryImages):
    def __init__(self, resolution: int = 16) -> None:
        from sklearn.datasets import load_digits  # reads the csv inside the package; no network

        bunch = load_digits()
        images = torch.from_numpy(bunch.images).float().mul(255.0 / 16.0).round()
        images = images.to(torch.uint8).unsqueeze(1)
        super().__init__(
            resize_uint8(images, resolution), torch.from_numpy(bunch.target).long(), 10
        )

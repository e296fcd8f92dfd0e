"""The embedded default: UCI's 8x8 handwritten digits (1,797 images, 10 classes).

They ship inside the scikit-learn wheel (sklearn/datasets/data/digits.csv.gz), so `ganrun
train` works on a fresh offline machine. The file is read directly, as load_digits reads it:
importing sklearn itself would add most of a second to every start-up. The 0..16 grey levels
are scaled to 0..255 and upscaled to `resolution`.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ganrun.data.base import InMemoryImages, resize_uint8


def digits_csv() -> Path | None:
    """Where the installed scikit-learn keeps digits.csv.gz (found without importing it)."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float in 0..16, labels (1797,) int): sklearn's load_digits data."""
    path = digits_csv()
    if path is None:  # a scikit-learn that moved its data file: ask it
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


class Digits(InMemoryImages):
    def __init__(self, resolution: int = 16) -> None:
        pixels, target = load_digits_arrays()
        images = torch.from_numpy(pixels).float().mul(255.0 / 16.0).round()
        images = images.to(torch.uint8).unsqueeze(1)
        super().__init__(resize_uint8(images, resolution), torch.from_numpy(target).long(), 10)

"""MNIST and Fashion-MNIST from the official IDX files in torchvision's folder layout.

The files are read directly (gzipped or not), so a read-only copy such as ../shared/data
works as it is: nothing is extracted or written next to it. torchvision is used only to
download, and only when `download=true` is asked for.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ganrun.data.base import InMemoryImages, resize_uint8
from ganrun.data.files import check_split, missing_files_error


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format: magic, big-endian dims, then uint8 data) as an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class MNIST(InMemoryImages):
    """28x28 grey digits; split train (60,000) or test (10,000)."""

    folder = "MNIST"

    def __init__(
        self, root: str = "data", split: str = "train", resolution: int = 28, download: bool = False
    ) -> None:
        train = check_split(self.folder, split)
        prefix = "train" if train else "t10k"
        raw = Path(root) / self.folder / "raw"
        wanted = [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]
        if download and not all(self._find(p) for p in wanted):
            self._download(root, train)
        found = [self._find(p) for p in wanted]
        if not all(found):
            raise missing_files_error(
                self.folder.lower(), root, [p.with_suffix(".gz") for p in wanted]
            )
        images = torch.from_numpy(read_idx(found[0]).copy()).unsqueeze(1)
        labels = torch.from_numpy(read_idx(found[1]).astype(np.int64))
        super().__init__(resize_uint8(images, resolution), labels, 10)

    @staticmethod
    def _find(path: Path) -> Path | None:
        for candidate in (path.with_name(path.name + ".gz"), path):
            if candidate.is_file():
                return candidate
        return None

    def _download(self, root: str, train: bool) -> None:
        import torchvision

        getattr(torchvision.datasets, self.folder)(root, train=train, download=True)


class FashionMNIST(MNIST):
    """Zalando's 28x28 grey clothing images, same files and layout as MNIST."""

    folder = "FashionMNIST"

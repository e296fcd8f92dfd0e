"""CIFAR-10 (python version) through torchvision, from files already on disk."""

from __future__ import annotations

from pathlib import Path

import torch

from ganrun.data.base import InMemoryImages, resize_uint8
from ganrun.data.files import check_split, missing_files_error

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


class CIFAR10(InMemoryImages):
    """32x32 colour images of 10 classes; split train (50,000) or test (10,000)."""

    def __init__(
        self, root: str = "data", split: str = "train", resolution: int = 32, download: bool = False
    ) -> None:
        import torchvision

        train = check_split("cifar10", split)
        folder = Path(root) / "cifar-10-batches-py"
        if not download and not all((folder / f).is_file() for f in FILES):
            raise missing_files_error("cifar10", root, [folder / f for f in FILES])
        try:
            ds = torchvision.datasets.CIFAR10(root, train=train, download=download)
        except RuntimeError as err:  # torchvision's checksum failure
            raise missing_files_error("cifar10", root, [folder / f for f in FILES]) from err
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor(ds.targets, dtype=torch.long)
        super().__init__(resize_uint8(images, resolution), labels, 10)

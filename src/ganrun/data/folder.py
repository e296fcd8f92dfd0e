"""Any folder of images, streamed from disk with DataLoader workers.

Images are found recursively; when they sit in more than one sub-folder, the sub-folder
names become class labels (torchvision's ImageFolder convention). Each image is resized
on its shorter side and centre-cropped to `resolution`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import functional as TF

from ganrun.data.base import Batch, batch_indices, from_uint8, subset_indices
from ganrun.errors import GanrunError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class _Files(Dataset):
    def __init__(self, files: list[Path], labels: list[int], resolution: int, mode: str) -> None:
        self.files, self.labels, self.resolution, self.mode = files, labels, resolution, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as img:
            img = img.convert(self.mode)
            img = TF.center_crop(TF.resize(img, self.resolution, antialias=True), self.resolution)
            return TF.pil_to_tensor(img), self.labels[i]


class ImageFolder:
    """Streams images from `root`; channels=1 reads grey, 3 reads RGB."""

    def __init__(
        self, root: str, resolution: int = 64, channels: int = 3, num_workers: int = 2
    ) -> None:
        if channels not in (1, 3):
            raise GanrunError(
                f"dataset.channels={channels} is not supported; use 1 (grey) or 3 (RGB)."
            )
        folder = Path(root)
        files = (
            sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS)
            if folder.is_dir()
            else []
        )
        if not files:
            raise GanrunError(
                f"dataset=image_folder: no images ({', '.join(sorted(EXTENSIONS))}) found under "
                f"dataset.root={root}. Point dataset.root at a folder that holds images."
            )
        parents = sorted({p.parent for p in files})
        self.num_classes = len(parents) if len(parents) > 1 else None
        labels = [parents.index(p.parent) for p in files] if self.num_classes else [0] * len(files)
        self.files = _Files(files, labels, resolution, "L" if channels == 1 else "RGB")
        self.shape: tuple[int, ...] = (channels, resolution, resolution)
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.files)

    def batches(
        self, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
    ) -> Iterator[Batch]:
        device = torch.device(device)
        loader = DataLoader(
            self.files,
            batch_sampler=batch_indices(len(self), batch_size, seed, start),
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        for x, y in loader:
            x = from_uint8(x.to(device, non_blocking=True))
            yield x, (y.to(device, non_blocking=True) if self.num_classes else None)

    def preview(self, n: int) -> torch.Tensor:
        return from_uint8(torch.stack([self.files[i][0] for i in range(min(n, len(self)))]))

    def real_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """n images (all when n >= len) as uint8 (n, C, R, R), for reference statistics."""
        subset = Subset(self.files, subset_indices(len(self), n, seed).tolist())
        loader = DataLoader(subset, batch_size=256, num_workers=self.num_workers)
        return torch.cat([x for x, _ in loader])

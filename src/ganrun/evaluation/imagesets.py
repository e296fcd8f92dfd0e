"""Image sets to evaluate: a folder of images, a samples.npz, a dataset's real images.

Each set streams uint8 (N, C, H, W) chunks, so 50,000 images never sit in memory as floats,
and says what it is twice: `label` (readable, for tables and cache file names) and
`identity()` (everything that decides its pixels, hashed into the reference-statistics cache
key, so a changed folder or another dataset split never reuses stale statistics).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganrun.data.base import subset_indices
from ganrun.data.folder import EXTENSIONS
from ganrun.errors import GanrunError

# dataset config keys that do not change the images (how to fetch or read them, classifiers)
NOT_PIXEL_KEYS = ("download", "num_workers", "classifier")
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}  # PIL modes read as one channel


class ImageSet(Protocol):
    label: str  # readable name: tables, cache file names
    shape: tuple[int, ...]  # (C, H, W) of every image

    def __len__(self) -> int: ...

    def identity(self) -> dict[str, Any]:
        """Everything that decides the pixels (hashed into the reference cache key)."""
        ...

    def chunks(self, n: int, batch_size: int) -> Iterator[Tensor]:
        """n of the images as uint8 (b, C, H, W) chunks: all, in order, when n >= len, else
        a seeded random subset (subset_indices), so the first n never stand for one class."""
        ...


def _file_id(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_image(path: Path) -> Tensor:
    """One image as uint8 (C, H, W): grey modes as 1 channel, everything else as RGB."""
    with Image.open(path) as img:
        img = img.convert("L" if img.mode in GREY_MODES else "RGB")
        array = np.asarray(img, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)


class FolderImages:
    """Every image under a folder (recursively, sorted), at its own size (no resizing).

    All images must share one size and channel count: FID resizes nothing here, so a stray
    image of another size is reported rather than silently rescaled.
    """

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key
        self.files = sorted(
            p for p in self.folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS
        )
        if not self.files:
            raise GanrunError(
                f"{key}={folder}: no images ({', '.join(sorted(EXTENSIONS))}) in this folder. "
                f"Point {key} at a folder that holds images, or at a samples.npz."
            )
        first = _read_image(self.files[0])
        self.shape: tuple[int, ...] = tuple(first.shape)
        self.label = f"folder-{self.folder.resolve().name}"

    def __len__(self) -> int:
        return len(self.files)

    def identity(self) -> dict[str, Any]:
        listing = hashlib.sha256()
        for p in self.files:
            stat = p.stat()
            listing.update(
                f"{p.relative_to(self.folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
        return {"folder": str(self.folder.resolve()), "files": listing.hexdigest()}

    def chunks(self, n: int, batch_size: int) -> Iterator[Tensor]:
        files = [self.files[i] for i in subset_indices(len(self), n)]
        for start in range(0, len(files), batch_size):
            batch = [self._checked(p) for p in files[start : start + batch_size]]
            yield torch.stack(batch)

    def _checked(self, path: Path) -> Tensor:
        image = _read_image(path)
        if tuple(image.shape) != self.shape:
            raise GanrunError(
                f"{self.key}={self.folder}: {path.name} is {describe(tuple(image.shape))} but "
                f"{self.files[0].name} is {describe(self.shape)}; every image of a set must "
                f"have one size and channel count. Resize them to one size first."
            )
        return image


class NpzImages:
    """The `images` array (n, H, W, C) uint8 of a samples.npz written by `ganrun sample`."""

    def __init__(self, path: str | Path, key: str) -> None:
        self.path = Path(path)
        try:
            with np.load(self.path) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same answer
            raise GanrunError(
                f"{key}={path} is not a readable .npz file ({type(err).__name__}). Pass a "
                f"samples.npz written by `ganrun sample`, or a folder of images."
            ) from None
        images = arrays.get("images")
        if images is None or images.ndim != 4 or images.dtype != np.uint8:
            found = ", ".join(f"{k} {v.dtype} {v.shape}" for k, v in arrays.items()) or "nothing"
            hint = " (2-D points have no image features)" if "points" in arrays else ""
            raise GanrunError(
                f"{key}={path} holds {found}{hint}; expected `images`: uint8 (n, H, W, C) "
                f"as `ganrun sample` writes for image models."
            )
        if len(images) == 0:
            raise GanrunError(f"{key}={path}: `images` is empty; pass a file with samples.")
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2)
        self.shape: tuple[int, ...] = tuple(self.images.shape[1:])
        self.label = f"npz-{self.path.resolve().parent.name}-{self.path.stem}"

    def __len__(self) -> int:
        return len(self.images)

    def identity(self) -> dict[str, Any]:
        return {"npz": _file_id(self.path)}

    def chunks(self, n: int, batch_size: int) -> Iterator[Tensor]:
        yield from self.images[subset_indices(len(self), n)].split(batch_size)


class DatasetImages:
    """A training dataset's real images (its `real_images(n, seed)`), named by its config."""

    def __init__(self, data: Any, node: dict[str, Any], seed: int = 0) -> None:
        self.data = data
        self.node = dict(node)
        self.seed = seed
        self.shape: tuple[int, ...] = tuple(data.shape)
        target = str(self.node.get("_target_", "dataset")).rsplit(".", 1)[-1].lower()
        split = f"-{self.node['split']}" if "split" in self.node else ""
        self.label = f"{target}{split}-{'x'.join(map(str, self.shape))}"

    def __len__(self) -> int:
        return len(self.data)

    def identity(self) -> dict[str, Any]:
        config = {k: v for k, v in self.node.items() if k not in NOT_PIXEL_KEYS}
        if "root" in config:
            config["root"] = str(Path(config["root"]).resolve())
        return {"dataset": config, "shape": list(self.shape), "seed": self.seed}

    def chunks(self, n: int, batch_size: int) -> Iterator[Tensor]:
        yield from self.data.real_images(n, self.seed).split(batch_size)


def describe(shape: tuple[int, ...]) -> str:
    """(3, 32, 32) -> '32x32 with 3 channels'."""
    c, h, w = shape
    return f"{h}x{w} with {c} channel{'s' if c > 1 else ''}"


def open_image_set(value: str, key: str) -> ImageSet:
    """A folder or a .npz file named on the command line (key: real or fake)."""
    path = Path(value)
    if path.is_dir():
        return FolderImages(path, key)
    if path.is_file():
        return NpzImages(path, key)
    raise GanrunError(
        f"{key}={value}: no such folder or file. Pass a folder of images or a samples.npz "
        f"written by `ganrun sample`."
    )

"""An image folder decoded once: the resized uint8 array in the cache, memory-mapped.

Decoding PNGs/JPEGs costs more CPU than a small GAN's training step, and it would be paid on
every epoch of every run. The first run decodes the folder (in DataLoader worker processes)
into <cache>/image_folder/<key>.npy; later runs map that file (no RAM copy per process, and
no decoding). The key covers every file's name, size and modification time, the resolution
and the channels, so any change to the folder or the settings builds a new file: never stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ganrun.atomic_io import atomic_write, remove_stale_temps, temp_path
from ganrun.cache import cache_dir

FORMAT = 1  # bump when what is stored (or how images are decoded) changes


def folder_key(root: Path, files: list[Path], resolution: int, channels: int) -> str:
    """A digest of the files (relative name, size, mtime) and the decode settings."""
    h = hashlib.sha256(json.dumps([FORMAT, resolution, channels]).encode())
    for path in files:
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def cache_paths(key: str) -> tuple[Path, Path]:
    folder = cache_dir() / "image_folder"
    return folder / f"{key}.npy", folder / f"{key}.json"


def load(key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
    """(the memory-mapped images, the metadata) of a complete cache entry, or None."""
    array_path, meta_path = cache_paths(key)
    if not (array_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # unreadable: rebuilt below
    return images, meta


def build(key: str, files: Dataset, meta: dict[str, Any], num_workers: int) -> np.ndarray:
    """Decode every image of `files` (in order) into the cache entry; returns its map.

    The array is written under a temp name and renamed once complete, then the metadata (its
    presence marks the entry complete), so a killed run never leaves a half entry."""
    array_path, meta_path = cache_paths(key)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(array_path.parent)
    tmp = temp_path(array_path)
    first = files[0][0]
    out = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.uint8, shape=(len(files), *first.shape)
    )
    try:
        loader = DataLoader(files, batch_size=256, num_workers=num_workers)
        done = 0
        for x, _ in loader:
            out[done : done + len(x)] = x.numpy()
            done += len(x)
        out.flush()
        del out
        os.replace(tmp, array_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    atomic_write(meta_path, json.dumps(meta).encode())
    return np.load(array_path, mmap_mode="r")


def gather(images: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
    """Rows `idx` of the mapped array as a uint8 tensor (a copy of just those rows)."""
    return torch.from_numpy(np.ascontiguousarray(images[idx.cpu().numpy()]))

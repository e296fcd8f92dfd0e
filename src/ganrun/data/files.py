"""Finding dataset files on disk, and the error that says where they should be."""

from __future__ import annotations

from pathlib import Path

from ganrun.errors import GanrunError


def missing_files_error(name: str, root: str | Path, expected: list[Path]) -> GanrunError:
    listing = "\n".join(f"  {p}" for p in expected)
    return GanrunError(
        f"dataset={name}: files not found under dataset.root={root}. Expected:\n{listing}\n"
        f"Copy the official files there (torchvision's layout), point dataset.root at the folder "
        f"that holds them, or pass dataset.download=true on a machine with internet."
    )


def check_split(name: str, split: str) -> bool:
    """True for the training split; a clear error for anything but train|test."""
    if split not in ("train", "test"):
        raise GanrunError(f"dataset.split={split!r} is not a split of {name}; use train or test.")
    return split == "train"

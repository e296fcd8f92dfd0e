"""Files written whole or not at all: temp file in the same folder, fsync, atomic rename.

Checkpoints, sample grids, npz arrays and run records all go through here, so a crash never
leaves a half-written file under the final name, and equal data give equal bytes.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write bytes to path via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez with fixed zip timestamps, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue()
            )
    atomic_write(path, buf.getvalue())

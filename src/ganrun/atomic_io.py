"""Files written whole or not at all: temp file in the same folder, fsync, atomic rename.

Checkpoints, sample grids, npz arrays and run records all go through here, so a crash never
leaves a half-written file under the final name, and equal data give equal bytes. A write
that fails removes its temp file; one killed outright (kill -9, power loss) leaves a
`.<name>.tmp<pid>` behind, which `remove_stale_temps` clears when the next run starts.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np

from ganrun.errors import GanrunError

# errnos that mean "the filesystem (or the user's quota) is full"
NO_SPACE = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
# .<name>.tmp<pid>: what atomic_write writes before its rename
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def temp_path(path: Path, pid: int | None = None) -> Path:
    """The temp file atomic_write uses for `path` (its own pid: two writers never share one)."""
    return path.with_name(f".{path.name}.tmp{os.getpid() if pid is None else pid}")


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write bytes to path via a temp file in the same folder and an atomic rename.

    On any failure (a full disk, Ctrl-C, SystemExit) the temp file is removed and the file
    already at `path` is left as it was; a full disk becomes a GanrunError with the sizes.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException as err:
        _unlink_quietly(tmp)
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            raise GanrunError(no_space_message(path, len(data))) from err
        raise
    _fsync_dir(path.parent)  # the rename itself survives a power loss


def _unlink_quietly(path: Path) -> None:
    """Remove a temp file without hiding the error that is on its way up."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _write_synced(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Persist the folder's entry for a renamed file; a no-op where the OS cannot (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.EACCES, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def no_space_message(path: Path, needed: int) -> str:
    """One paragraph: what could not be written, how much it needed, how much is free, the fix."""
    try:
        left = shutil.disk_usage(path.parent).free
        free = f"{left} bytes ({_mb(left)})"
    except OSError:
        free = "an unknown number of bytes"
    kept = f" The previous {path.name} is unchanged." if path.exists() else ""
    return (
        f"No space left on the device to write {path}: it needs {needed} bytes "
        f"({_mb(needed)}) and the filesystem of {path.parent} has {free} free.{kept} Free "
        f"space there (e.g. delete old step_<N>.pt checkpoints, or keep fewer with "
        f"trainer.keep_last=N), or point hydra.run.dir at a filesystem with room."
    )


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def remove_stale_temps(folder: Path, own: bool = False) -> list[Path]:
    """Delete the temp files of writers that died mid-write (kill -9, power loss).

    Only `.<name>.tmp<pid>` files directly in `folder` whose pid is no live process; with
    `own`, this process's own temps too (a container restarted after kill -9 often gets the
    same pid again), for callers that know this process is writing nothing there yet.
    Returns the removed paths.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.iterdir()):
        match = TEMP_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        pid = int(match["pid"])
        if (own and pid == os.getpid()) or not _alive(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (as far as this machine can tell)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: keep its temps
        return True
    if pid <= 0:  # no writer has pid 0, and os.kill(0, ...) means the process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except (OverflowError, ValueError):  # larger than any pid
        return False
    return True


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

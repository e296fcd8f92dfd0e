"""One run per folder: an exclusive lock on <run>/.lock for the run's life.

The OS's own advisory lock (fcntl.flock) is released by the kernel when the process dies, so
the lock of a killed run is simply taken over by the next one; the file holds the owner's pid
for the message a second run gets. (Where fcntl does not exist, e.g. Windows, no lock.)
"""

from __future__ import annotations

import os
from pathlib import Path

from ganrun.errors import GanrunError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise GanrunError(
                f"hydra.run.dir={self.path.parent} is in use by another ganrun run (pid {owner}); "
                f"two runs in one folder would interleave their files. Pick another "
                f"hydra.run.dir, or wait for that run to end."
            ) from None
        self.fd = fd
        return self

    def own(self) -> None:
        """Write this process's pid into the lock file, for the message a second run gets.
        Called once the folder is known to be ours (a refused run leaves the file as it was)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

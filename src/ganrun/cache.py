"""Where ganrun keeps what it can rebuild: reference statistics, network weights, decoded
image folders. $GANRUN_CACHE, else .cache/ganrun under the current directory (read at call
time, so tests and jobs can point it elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("GANRUN_CACHE") or Path(".cache") / "ganrun")

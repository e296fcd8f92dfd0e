"""Where ganrun keeps what it can rebuild: reference statistics, network weights, decoded
image folders.

$GANRUN_CACHE when set (and not empty), else the platform's user cache folder, so that every
project folder on a machine shares one cache (a classifier retrained or Inception weights
copied once serve them all):

    Linux    $XDG_CACHE_HOME/ganrun, else ~/.cache/ganrun   (the XDG base directory rules)
    macOS    ~/Library/Caches/ganrun
    Windows  %LOCALAPPDATA%\\ganrun\\Cache

platformdirs knows those rules. The environment is read at call time, so tests and jobs can
point the cache elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "ganrun"


def user_cache_dir() -> Path:
    """The platform's per-user cache folder for ganrun (ignoring $GANRUN_CACHE)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def cache_dir() -> Path:
    return Path(os.environ.get("GANRUN_CACHE") or user_cache_dir())

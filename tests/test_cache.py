"""ganrun.cache.cache_dir: $GANRUN_CACHE, else the user cache folder by the XDG rules.

The autouse _private_cache fixture sets GANRUN_CACHE for every test; these tests unset it on
purpose (monkeypatch restores it after each).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ganrun.cache import cache_dir

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the XDG rules are the Linux ones"
)


def test_ganrun_cache_wins(tmp_path, monkeypatch):
    """$GANRUN_CACHE is used as given, even with XDG_CACHE_HOME set; relative stays relative."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("GANRUN_CACHE", "rel/cache")
    assert cache_dir() == Path("rel/cache")


@linux_only
def test_xdg_cache_home(tmp_path, monkeypatch):
    """No (or an empty) GANRUN_CACHE and XDG_CACHE_HOME set: $XDG_CACHE_HOME/ganrun."""
    monkeypatch.delenv("GANRUN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "xdg" / "ganrun"
    monkeypatch.setenv("GANRUN_CACHE", "")
    assert cache_dir() == tmp_path / "xdg" / "ganrun"


@linux_only
def test_home_cache_without_xdg(tmp_path, monkeypatch):
    """Neither variable (or an empty XDG_CACHE_HOME): ~/.cache/ganrun under $HOME, whatever the
    current folder is (the old default was ./.cache/ganrun)."""
    monkeypatch.delenv("GANRUN_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert cache_dir() == tmp_path / "home" / ".cache" / "ganrun"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_dir() == tmp_path / "home" / ".cache" / "ganrun"


@linux_only
def test_a_cache_writer_uses_the_user_cache(tmp_path, monkeypatch):
    """A real writer of the cache (the decoded image folder) puts its entry under
    $XDG_CACHE_HOME/ganrun when GANRUN_CACHE is unset, and nothing in the current folder."""
    import numpy as np
    from PIL import Image

    from ganrun.data.folder import ImageFolder

    monkeypatch.delenv("GANRUN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    images = work / "imgs"
    images.mkdir(parents=True)
    monkeypatch.chdir(work)
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / f"{i}.png")
    data = ImageFolder(str(images), resolution=8, num_workers=0)
    assert data.images is not None and data.images.shape == (3, 3, 8, 8)
    entries = sorted((tmp_path / "xdg" / "ganrun" / "image_folder").glob("*.npy"))
    assert len(entries) == 1
    assert sorted(p.name for p in work.iterdir()) == ["imgs"]

"""Data faults in image_folder: an unreadable file fails naming it, or is skipped and logged."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg
from PIL import Image

from ganrun.build import build_data
from ganrun.data.folder import ImageFolder
from ganrun.errors import GanrunError

COLORS = [(10, 200, 30), (250, 5, 90), (60, 60, 240), (0, 128, 255), (222, 111, 0)]


def good_images(folder: Path) -> list[Path]:
    """Five solid-colour 12x12 PNGs, 0.png .. 4.png."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.png" for i in range(len(COLORS))]
    for path, color in zip(paths, COLORS, strict=True):
        Image.new("RGB", (12, 12), color).save(path)
    return paths


def corrupt(path: Path, seed: int = 0) -> Path:
    """Random bytes under an image's name."""
    path.write_bytes(random.Random(seed).randbytes(600))
    return path


def truncated(path: Path) -> Path:
    """A real PNG cut short: its header parses, its data chunk does not check out."""
    Image.new("RGB", (40, 40), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:-30])
    return path


def all_batches(data: ImageFolder, batch_size: int, n: int) -> list[torch.Tensor]:
    it = data.batches(batch_size, seed=3)
    return [next(it)[0] for _ in range(n)]


@pytest.fixture
def ganrun_log(caplog, monkeypatch):
    """caplog sees the "ganrun" logger even after a train() in this process turned off its
    propagation to the root logger."""
    monkeypatch.setattr(logging.getLogger("ganrun"), "propagate", True)
    caplog.set_level(logging.INFO, logger="ganrun")
    return caplog


@pytest.mark.parametrize("make_bad", [corrupt, truncated])
def test_fail_names_the_file_and_the_fix(tmp_path, make_bad):
    """on_error=fail (the default): a GanrunError at listing time naming the file and both fixes."""
    good_images(tmp_path)
    bad = make_bad(tmp_path / "3b.png")
    for kwargs in ({}, {"on_error": "fail"}):
        with pytest.raises(GanrunError) as err:
            ImageFolder(str(tmp_path), resolution=8, num_workers=0, **kwargs)
        message = str(err.value)
        assert str(bad) in message
        assert "1 of the 6 image files" in message
        assert "Remove it" in message and "dataset.on_error=skip" in message
        assert "\n" not in message
        assert not any(str(p) in message for p in tmp_path.glob("[0-4].png"))


def test_skip_leaves_the_file_out_and_logs_it(tmp_path, ganrun_log):
    """on_error=skip: the dataset holds the good images only, the same batches as a folder
    without the bad file, and the log names the skipped file with a count."""
    good_images(tmp_path / "with")
    good_images(tmp_path / "without")
    bad = corrupt(tmp_path / "with" / "2x.png")
    skipped = ImageFolder(str(tmp_path / "with"), resolution=8, num_workers=0, on_error="skip")
    clean = ImageFolder(str(tmp_path / "without"), resolution=8, num_workers=0)
    assert len(skipped) == len(clean) == 5
    assert [p.name for p in skipped.files.files] == [f"{i}.png" for i in range(5)]
    assert [p for p, _ in skipped.skipped] == [bad]
    assert ganrun_log.records == []  # reported when the data are first streamed (train.log is open)
    for a, b in zip(all_batches(skipped, 2, 6), all_batches(clean, 2, 6), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    warnings = [r.getMessage() for r in ganrun_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(bad) in warnings[0] and "left out 1 unreadable image file" in warnings[0]
    assert not any(str(tmp_path / "with" / f"{i}.png") in warnings[0] for i in range(5))


def test_skip_keeps_labels_of_the_good_files(tmp_path):
    """Class labels come from the folders of the readable files: a class folder whose only
    file is unreadable is no class."""
    good_images(tmp_path / "a")
    good_images(tmp_path / "b")
    (tmp_path / "c").mkdir()
    corrupt(tmp_path / "c" / "0.png")
    data = ImageFolder(str(tmp_path), resolution=8, num_workers=0, on_error="skip")
    assert data.num_classes == 2
    assert len(data) == 10
    assert data.files.labels == [0] * 5 + [1] * 5


def test_good_folder_is_unchanged_by_the_check(tmp_path, ganrun_log):
    """A folder with no bad file: nothing skipped or logged, and fail and skip read the same."""
    good_images(tmp_path)
    fail = ImageFolder(str(tmp_path), resolution=8, num_workers=0)
    skip = ImageFolder(str(tmp_path), resolution=8, num_workers=0, on_error="skip")
    assert fail.skipped == skip.skipped == []
    for a, b in zip(all_batches(fail, 3, 4), all_batches(skip, 3, 4), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert ganrun_log.records == []


def test_all_unreadable_and_bad_on_error(tmp_path):
    """Nothing readable is an error even with skip; an unknown on_error names the key."""
    corrupt(tmp_path / "a.png", 1)
    corrupt(tmp_path / "b.jpg", 2)
    with pytest.raises(GanrunError, match=r"none of the 2 image files .* can be read"):
        ImageFolder(str(tmp_path), on_error="skip")
    with pytest.raises(GanrunError, match=r"dataset\.on_error=ignore is not supported"):
        ImageFolder(str(tmp_path), on_error="ignore")


def test_decode_failure_after_listing_is_one_clear_error(tmp_path, monkeypatch):
    """A file that passes the listing check but fails to decode (e.g. a truncated JPEG) stops
    with a one-line GanrunError naming it, also from a DataLoader worker process."""
    good_images(tmp_path)
    data = ImageFolder(str(tmp_path), resolution=8, num_workers=0, cache=False)
    victim = data.files.files[1]
    corrupt(victim)  # broken after the listing
    for workers in (0, 1):
        data.num_workers = workers
        with pytest.raises(GanrunError) as err:
            all_batches(data, 5, 1)
        assert str(victim) in str(err.value) and "does not decode" in str(err.value)
        assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_config_default_and_override(tmp_path):
    """dataset=image_folder composes with on_error=fail; dataset.on_error=skip reaches the set."""
    good_images(tmp_path)
    corrupt(tmp_path / "9.png")
    base = ["dataset=image_folder", f"dataset.root={tmp_path}", "dataset.num_workers=0"]
    assert compose_cfg(*base).dataset.on_error == "fail"
    with pytest.raises(GanrunError, match="9.png"):
        build_data(compose_cfg(*base))
    assert len(build_data(compose_cfg(*base, "dataset.on_error=skip"))) == 5


def test_decode_failure_while_building_the_cache_is_one_clear_error(tmp_path, monkeypatch):
    """cache=true decodes the folder up front: a file the check let through fails there, with
    the same one-line message, from a worker process too, and no cache entry is left."""
    import ganrun.data.folder as folder
    from ganrun.data import decoded_cache

    good_images(tmp_path / "imgs")
    victim = sorted((tmp_path / "imgs").rglob("*.png"))[1]
    corrupt(victim)
    monkeypatch.setattr(folder, "unreadable", lambda path: None)  # as a truncated JPEG passes
    for workers in (0, 1):
        with pytest.raises(GanrunError) as err:
            ImageFolder(str(tmp_path / "imgs"), resolution=8, num_workers=workers)
        assert str(victim) in str(err.value) and "\n" not in str(err.value)
    assert list((decoded_cache.cache_dir() / "image_folder").glob("*")) == []

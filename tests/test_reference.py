"""Reference statistics: computed once per key, reused, recomputed when anything in the key changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_digit_classifier
from PIL import Image

from ganrun.data.base import subset_indices
from ganrun.data.digits import Digits
from ganrun.evaluation.features.extractor import DigitFeatures
from ganrun.evaluation.imagesets import DatasetImages, FolderImages
from ganrun.evaluation.reference import reference_path, reference_stats


class Counting:
    """A real extractor that counts the images it is asked to embed."""

    def __init__(self, extractor: DigitFeatures) -> None:
        self.inner = extractor
        self.name, self.dims, self.weights_path = (
            extractor.name,
            extractor.dims,
            extractor.weights_path,
        )
        self.images = 0

    def __call__(self, images: torch.Tensor):
        self.images += len(images)
        return self.inner(images)


@pytest.fixture
def extractor(digit_cache) -> Counting:
    return Counting(DigitFeatures())


@pytest.fixture(scope="module")
def digits() -> DatasetImages:
    return DatasetImages(Digits(16), {"_target_": "ganrun.data.digits.Digits", "resolution": 16})


def write_folder(folder: Path, n: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(
            folder / f"{i:03d}.png"
        )
    return folder


def refstats(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "refstats").glob("*.npz"))


def test_second_call_reads_the_cache(digits, extractor, digit_cache):
    """First call embeds 300 images and writes one file; the second embeds none, same numbers."""
    first = reference_stats(digits, 300, extractor)
    assert extractor.images == 300
    assert refstats(digit_cache) == [first.path.name]
    assert first.path.name.startswith("digits-1x16x16-digit-classifier-n300-")
    second = reference_stats(digits, 300, extractor)
    assert extractor.images == 300  # nothing recomputed
    assert second.n == 300 and second.extractor == "digit-classifier"
    torch.testing.assert_close(second.mu, first.mu, rtol=0, atol=0)
    torch.testing.assert_close(second.sigma, first.sigma, rtol=0, atol=0)


def test_statistics_are_mean_and_covariance_of_the_features(digits, extractor):
    ref = reference_stats(digits, 200, extractor, need_features=True)
    feats = ref.features.double().numpy()
    assert ref.features.shape == (200, 128)
    np.testing.assert_allclose(ref.mu.numpy(), feats.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref.sigma.numpy(), np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-9)
    # they are the features of the first 200 images of a seeded subset of the dataset
    images = digits.data.real_images(200)
    torch.testing.assert_close(ref.features, extractor.inner(images)[0])


def test_another_count_recomputes(digits, extractor, digit_cache):
    a = reference_stats(digits, 200, extractor)
    b = reference_stats(digits, 250, extractor)
    assert extractor.images == 450 and a.path != b.path and len(refstats(digit_cache)) == 2


def test_other_weights_recompute(digits, extractor, digit_cache, tmp_path):
    reference_stats(digits, 200, extractor)
    other = Counting(DigitFeatures(str(write_digit_classifier(tmp_path / "other", seed=1))))
    ref = reference_stats(digits, 200, other)
    assert other.images == 200 and len(refstats(digit_cache)) == 2
    assert not torch.equal(ref.mu, reference_stats(digits, 200, extractor).mu)


def test_another_dataset_config_recomputes(extractor, digit_cache):
    a = DatasetImages(Digits(16), {"_target_": "ganrun.data.digits.Digits", "resolution": 16})
    b = DatasetImages(Digits(20), {"_target_": "ganrun.data.digits.Digits", "resolution": 20})
    assert reference_path(a, 100, extractor) != reference_path(b, 100, extractor)
    reference_stats(a, 100, extractor)
    reference_stats(b, 100, extractor)
    assert extractor.images == 200


def test_keys_that_do_not_change_pixels_share_a_file(extractor, tmp_path, monkeypatch):
    """download / num_workers do not change the images; a relative root means its folder."""
    monkeypatch.chdir(tmp_path)
    data = Digits(16)
    a = DatasetImages(data, {"_target_": "x.MNIST", "root": "data", "download": False})
    b = DatasetImages(
        data, {"_target_": "x.MNIST", "root": str(tmp_path / "data"), "download": True}
    )
    c = DatasetImages(data, {"_target_": "x.MNIST", "root": "elsewhere"})
    assert reference_path(a, 100, extractor) == reference_path(b, 100, extractor)
    assert reference_path(a, 100, extractor) != reference_path(c, 100, extractor)


def test_changed_folder_recomputes(extractor, tmp_path):
    folder = write_folder(tmp_path / "imgs", 140)
    reference_stats(FolderImages(folder, "real"), 1000, extractor)
    reference_stats(FolderImages(folder, "real"), 1000, extractor)
    assert extractor.images == 140
    write_folder(tmp_path / "extra", 1)
    (tmp_path / "extra" / "000.png").rename(folder / "new.png")
    ref = reference_stats(FolderImages(folder, "real"), 1000, extractor)
    assert extractor.images == 140 + 141 and ref.n == 141


def test_features_added_when_a_metric_needs_them(digits, extractor, digit_cache):
    """A cached file without features is recomputed once when KID/PR need them, then reused."""
    plain = reference_stats(digits, 150, extractor)
    assert plain.features is None
    with_features = reference_stats(digits, 150, extractor, need_features=True)
    assert extractor.images == 300 and with_features.features.shape == (150, 128)
    again = reference_stats(digits, 150, extractor)  # a file with features serves both
    assert extractor.images == 300 and again.features is not None
    assert refstats(digit_cache) == [plain.path.name]


def test_cache_off_writes_nothing(digits, extractor, digit_cache):
    ref = reference_stats(digits, 100, extractor, cache=False)
    reference_stats(digits, 100, extractor, cache=False)
    assert ref.path is None and extractor.images == 200 and refstats(digit_cache) == []


def test_unreadable_cache_file_is_recomputed(digits, extractor):
    good = reference_stats(digits, 100, extractor)
    good.path.write_bytes(b"truncated")
    again = reference_stats(digits, 100, extractor)
    assert extractor.images == 200
    torch.testing.assert_close(again.mu, good.mu)
    assert reference_stats(digits, 100, extractor).n == 100 and extractor.images == 200


def test_subset_indices():
    """All, in order, when n >= total; else n distinct sorted indices, the same for a seed."""
    assert subset_indices(5, 9).tolist() == [0, 1, 2, 3, 4]
    a = subset_indices(1000, 100, seed=0)
    assert len(a) == 100 and len(set(a.tolist())) == 100
    assert a.tolist() == sorted(a.tolist()) and 0 <= a.min() and a.max() < 1000
    assert torch.equal(a, subset_indices(1000, 100, seed=0))
    assert not torch.equal(a, subset_indices(1000, 100, seed=1))

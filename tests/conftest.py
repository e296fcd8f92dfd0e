"""Shared fixtures: compose the real config with the smoke preset, find the shared datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ganrun.atomic_io import atomic_write
from ganrun.config import CONF, register
from ganrun.evaluation.features.digit_classifier import (
    CHECKPOINT_NAME,
    DigitClassifier,
    checkpoint_bytes,
)

REPO = Path(__file__).resolve().parents[1]


# The official MNIST / CIFAR-10 files (../shared/data on the dev machines); tests that need
# them skip when the folder is absent.
def _shared_data() -> Path:
    if "GANRUN_TEST_DATA" in os.environ:
        return Path(os.environ["GANRUN_TEST_DATA"])
    candidates = [REPO.parent / "shared" / "data", Path("/work/shared/data")]
    return next((p for p in candidates if p.is_dir()), candidates[0])


SHARED_DATA = _shared_data()


def compose_cfg(*overrides: str, task: str = "train", smoke: bool = True) -> DictConfig:
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(task, overrides=(["debug=smoke"] if smoke else []) + list(overrides))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests write caches (decoded image folders, reference statistics) under a temp folder,
    not under the repository, unless a fixture already chose $GANRUN_CACHE."""
    if "GANRUN_CACHE" not in os.environ:
        monkeypatch.setenv("GANRUN_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def make_cfg():
    """make_cfg("model=mlp", ...) -> the composed train config with debug=smoke."""
    return compose_cfg


def has_mnist() -> bool:
    return (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()


def has_cifar10() -> bool:
    return (SHARED_DATA / "cifar-10-batches-py" / "data_batch_1").is_file()


needs_mnist = pytest.mark.skipif(not has_mnist(), reason=f"MNIST files not under {SHARED_DATA}")
needs_cifar10 = pytest.mark.skipif(
    not has_cifar10(), reason=f"CIFAR-10 files not under {SHARED_DATA}"
)


def write_digit_classifier(cache: Path, seed: int = 0) -> Path:
    """A random-weight digit classifier checkpoint in `cache` (CI has no trained one).

    Its features are a fixed random projection: enough for FID-style metrics to be
    computed, compared and cached, which is what the tests check.
    """
    with torch.random.fork_rng():  # leave the global RNG as it was
        torch.manual_seed(seed)
        model = DigitClassifier()
    path = cache / CHECKPOINT_NAME
    atomic_write(path, checkpoint_bytes(model, seed=seed))
    return path


@pytest.fixture
def digit_cache(tmp_path, monkeypatch) -> Path:
    """$GANRUN_CACHE in tmp_path, holding a random-weight digit classifier."""
    cache = tmp_path / "cache"
    write_digit_classifier(cache)
    monkeypatch.setenv("GANRUN_CACHE", str(cache))
    return cache

"""Stacked MNIST: construction from the MNIST files, batches, and mode counting (evaluate)."""

from __future__ import annotations

import math
import os

import pytest
import torch
from conftest import REPO, SHARED_DATA, compose_cfg, needs_mnist

from ganrun.build import build_data
from ganrun.data.base import batch_indices, resize_uint8
from ganrun.data.mnist import MNIST
from ganrun.data.stacked_mnist import StackedMNIST, mode_coverage, triples_to_modes
from ganrun.errors import GanrunError
from ganrun.evaluation.features.digit_classifier import (
    default_classifier_path,
    load_digit_classifier,
)
from ganrun.evaluation.metrics.modes import mode_metrics, reverse_kl_uniform

SIZE = 2000


def trained_path():
    return REPO / default_classifier_path()  # an absolute $GANRUN_CACHE stays as it is


def classifier_or_skip():
    path = trained_path()
    if not path.is_file():
        pytest.skip(f"no trained classifier at {path}; run scripts/train_digit_classifier.py")
    return path


def shared_listing() -> dict[str, tuple[int, int]]:
    folder = SHARED_DATA / "MNIST"
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def mnist_train() -> MNIST:
    return MNIST(str(SHARED_DATA), "train")


@pytest.fixture(scope="module")
def mnist_test() -> MNIST:
    return MNIST(str(SHARED_DATA), "test")


@pytest.fixture(scope="module")
def stacked() -> StackedMNIST:
    return StackedMNIST(str(SHARED_DATA), "train", size=SIZE, seed=0)


# ------------------------------------------------------------------------ the dataset


@needs_mnist
def test_shape_size_and_classes(stacked):
    assert len(stacked) == SIZE
    assert stacked.shape == (3, 28, 28)
    assert stacked.num_classes == 1000
    images = stacked.images
    assert images.dtype == torch.uint8 and tuple(images.shape) == (SIZE, 3, 28, 28)
    assert 0 <= stacked.labels.min().item() <= stacked.labels.max().item() < 1000


@needs_mnist
def test_channels_are_mnist_digits_and_labels_their_triples(stacked, mnist_train):
    """Channel c of image i is MNIST image index[i, c]; the label is 100 d0 + 10 d1 + d2."""
    images = stacked.images
    idx = stacked.index
    assert 0 <= idx.min().item() <= idx.max().item() < 60000
    for c in range(3):
        assert torch.equal(images[:, c], mnist_train.images[idx[:, c], 0])
    d = mnist_train.labels[idx]
    assert torch.equal(stacked.labels, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
    # the label's decimal digits spell the three digits
    for i in range(0, SIZE, 97):
        assert f"{stacked.labels[i].item():03d}" == "".join(str(v) for v in d[i].tolist())


@needs_mnist
def test_each_channel_roughly_uniform_and_channels_independent(stacked):
    """~200 of each digit per channel (MNIST's class shares are 9.0-11.2%), and the number of
    distinct triples matches independent draws: 1000 * (1 - exp(-2)) ~ 865 for 2000 images."""
    digits = torch.stack([stacked.labels // 100, stacked.labels // 10 % 10, stacked.labels % 10])
    for channel in digits:
        counts = torch.bincount(channel, minlength=10)
        assert len(counts) == 10
        assert 120 < counts.min().item() <= counts.max().item() < 280
    distinct = len(stacked.labels.unique())
    assert 800 < distinct < 925


@needs_mnist
def test_deterministic_for_a_seed_different_for_another():
    a = StackedMNIST(str(SHARED_DATA), "test", size=500, seed=3)
    b = StackedMNIST(str(SHARED_DATA), "test", size=500, seed=3)
    c = StackedMNIST(str(SHARED_DATA), "test", size=500, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.index, c.index)
    assert (a.labels != c.labels).double().mean().item() > 0.9


@needs_mnist
def test_batches_gather_the_stack_in_range(stacked):
    """Batch k holds the images of batch_indices' k-th index batch, scaled to [-1, 1]."""
    images = stacked.images
    it = stacked.batches(500, seed=7)
    idx_it = batch_indices(SIZE, 500, seed=7)
    for _ in range(5):  # crosses an epoch boundary (4 batches per epoch)
        (x, y), idx = next(it), next(idx_it)
        assert tuple(x.shape) == (500, 3, 28, 28) and x.dtype == torch.float32
        assert x.min().item() == -1.0 and x.max().item() == 1.0
        torch.testing.assert_close(x, images[idx].float() / 127.5 - 1.0)
        assert torch.equal(y, stacked.labels[idx])
    torch.testing.assert_close(stacked.preview(4), images[:4].float() / 127.5 - 1.0)


@needs_mnist
def test_resolution_32():
    data = StackedMNIST(str(SHARED_DATA), "test", resolution=32, size=300, seed=0)
    assert data.shape == (3, 32, 32)
    x, _ = next(data.batches(100, seed=0))
    assert tuple(x.shape) == (100, 3, 32, 32)
    assert -1.0 <= x.min().item() < -0.99 and 0.99 < x.max().item() <= 1.0


@needs_mnist
def test_builds_from_config_and_leaves_shared_folder_alone(tmp_path):
    """dataset=stacked_mnist composes and builds; the read-only source is not written to."""
    before = shared_listing()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        cfg = compose_cfg(
            "dataset=stacked_mnist", f"dataset.root={SHARED_DATA}", "dataset.size=1000"
        )
        data = build_data(cfg)
    finally:
        os.chdir(cwd)
    assert isinstance(data, StackedMNIST)
    assert len(data) == 1000 and data.shape == (3, 28, 28)
    assert shared_listing() == before
    assert list(tmp_path.iterdir()) == []


def test_experiment_preset_composes():
    cfg = compose_cfg("experiment=stacked_mnist", smoke=False)
    assert cfg.dataset._target_ == "ganrun.data.stacked_mnist.StackedMNIST"
    assert cfg.dataset.resolution == 32
    assert cfg.model.generator._target_ == "ganrun.models.dcgan.DCGANGenerator"
    assert cfg.loss._target_ == "ganrun.losses.ns.NonSaturatingLoss"
    assert cfg.trainer.eval_samples == 26000
    assert 0 < cfg.trainer.eval_every <= cfg.trainer.max_steps


def test_missing_files_are_a_clear_error(tmp_path):
    with pytest.raises(GanrunError, match="dataset=stacked_mnist: files not found") as info:
        StackedMNIST(str(tmp_path), "train", size=10)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path) in message
    with pytest.raises(GanrunError, match="t10k-images-idx3-ubyte.gz"):
        StackedMNIST(str(tmp_path), "test", size=10)
    with pytest.raises(GanrunError, match="dataset.split='val'"):
        StackedMNIST(str(tmp_path), "val", size=10)


# -------------------------------------------------------------------- mode counting


def test_triples_to_modes():
    d = torch.tensor([[0, 0, 0], [1, 2, 3], [9, 9, 9], [0, 5, 0]])
    assert triples_to_modes(d).tolist() == [0, 123, 999, 50]


def test_reverse_kl_two_modes_by_hand():
    """30 samples on one mode and 10 on another: q = (3/4, 1/4) against uniform over 1000."""
    modes = torch.tensor([123] * 30 + [456] * 10)
    got = mode_coverage(modes)
    assert got["modes"] == 2.0
    expected = 0.75 * math.log(0.75 * 1000) + 0.25 * math.log(0.25 * 1000)  # 6.3454...
    assert math.isclose(got["reverse_kl"], expected, rel_tol=1e-12)
    assert 6.34 < got["reverse_kl"] < 6.35


def test_reverse_kl_extremes_and_agreement_with_mode_metrics():
    """0 for the uniform histogram, log 1000 for one mode; same figure as mode_metrics."""
    assert reverse_kl_uniform(torch.ones(1000)) == 0.0
    assert math.isclose(mode_coverage(torch.full((50,), 7))["reverse_kl"], math.log(1000))
    modes = torch.randint(0, 40, (300,), generator=torch.Generator().manual_seed(0))
    ours = mode_coverage(modes)
    # the same histogram through the 2-D helper: each mode a point on a line, std tiny
    theirs = mode_metrics(
        modes.double().unsqueeze(1), torch.arange(1000).double().unsqueeze(1), std=0.01
    )
    assert ours["modes"] == theirs["modes"] == len(modes.unique())
    assert math.isclose(ours["reverse_kl"], theirs["reverse_kl"], rel_tol=1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        mode_coverage(torch.tensor([1000]))


@needs_mnist
def test_evaluate_without_classifier_names_the_script(tmp_path, mnist_test):
    data = StackedMNIST(str(SHARED_DATA), "test", size=10, classifier=str(tmp_path / "c.pt"))
    with pytest.raises(GanrunError, match="scripts/train_digit_classifier.py"):
        data.evaluate(torch.zeros(4, 3, 28, 28))


KNOWN = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 0, 1), (2, 2, 2), (5, 5, 0), (8, 3, 9)]
COUNTS = [8, 8, 7, 7, 7, 7, 6]  # 50 samples


def known_triples(mnist: MNIST, correct: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """uint8 (50, 3, 28, 28) stacks of the KNOWN triples, COUNTS times each, from test images
    the classifier labels correctly (this checks the counting, not the classifier)."""
    gen = torch.Generator().manual_seed(seed)
    pools = [torch.nonzero(correct & (mnist.labels == d)).flatten() for d in range(10)]
    stacks = []
    for triple, count in zip(KNOWN, COUNTS):
        for _ in range(count):
            picks = [pools[d][torch.randint(len(pools[d]), (1,), generator=gen)] for d in triple]
            stacks.append(torch.cat([mnist.images[p] for p in picks], dim=1))
    return torch.cat(stacks)


@needs_mnist
def test_evaluate_counts_known_triples(mnist_test):
    """50 real stacks covering exactly 7 known triples -> modes 7, reverse KL from COUNTS."""
    path = classifier_or_skip()
    model = load_digit_classifier(path)
    # digits the classifier reads right at 28 px and after DCGAN's 32 px round trip, so the
    # known triples are the ground truth at both sizes
    correct = torch.ones(len(mnist_test.labels), dtype=torch.bool)
    for size in (28, 32):
        x = resize_uint8(mnist_test.images, size).float() / 127.5 - 1
        correct &= model.predict(x) == mnist_test.labels
    stacks = known_triples(mnist_test, correct)
    data = StackedMNIST(str(SHARED_DATA), "test", size=10, classifier=str(path))
    q = torch.tensor(COUNTS, dtype=torch.float64) / 50
    expected_kl = (q * (q * 1000).log()).sum().item()  # 4.9659...
    for images in (stacks, resize_uint8(stacks, 32)):  # 28 and DCGAN's 32
        got = data.evaluate(images.float() / 127.5 - 1)
        assert set(got) == {"modes", "reverse_kl"}
        assert got["modes"] == 7.0
        assert math.isclose(got["reverse_kl"], expected_kl, rel_tol=1e-9)
        assert 4.96 < got["reverse_kl"] < 4.97


@needs_mnist
def test_evaluate_on_real_stacks_finds_their_modes(stacked):
    """The real data: >= 95% of triples read correctly (~0.99^3), modes within 3% of the truth."""
    path = classifier_or_skip()
    data = StackedMNIST(str(SHARED_DATA), "train", size=SIZE, seed=0, classifier=str(path))
    x = data.preview(SIZE)
    digits = data.classify(x)
    triple_acc = (triples_to_modes(digits) == data.labels).double().mean().item()
    assert 0.95 <= triple_acc <= 1.0
    got = data.evaluate(x)
    true = mode_coverage(data.labels)
    assert abs(got["modes"] - true["modes"]) <= 0.03 * true["modes"]
    assert abs(got["reverse_kl"] - true["reverse_kl"]) < 0.05
    assert 0.2 < got["reverse_kl"] < 0.45  # ~0.28 for 2000 uniform draws over 1000 modes

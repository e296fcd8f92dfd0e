"""KID, Inception Score and precision/recall against torch-fidelity, brute force and limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import calculate_precision_recall_full

from ganrun.errors import GanrunError
from ganrun.evaluation.metrics.inception_score import inception_score
from ganrun.evaluation.metrics.kid import kernel_inception_distance, mmd2_unbiased
from ganrun.evaluation.metrics.precision_recall import precision_recall


def features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen) + shift


# --- KID -------------------------------------------------------------------------------------


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimator written out pair by pair."""
    d, m = x.shape[1], len(x)

    def k(a, b):
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_mmd2_matches_brute_force():
    x, y = features(7, 5, seed=0), features(7, 5, seed=1, shift=0.5)
    expected = brute_force_mmd2(x.double().numpy(), y.double().numpy())
    assert float(mmd2_unbiased(x.double(), y.double())) == pytest.approx(expected, rel=1e-10)


def test_kid_matches_torch_fidelity():
    real, fake = features(120, 16, seed=2), features(90, 16, seed=3, shift=0.6)
    mean, std = kernel_inception_distance(real, fake, subsets=20, subset_size=50, seed=7)
    ref = kid_features_to_metric(
        real, fake, kid_subsets=20, kid_subset_size=50, rng_seed=7, verbose=False
    )
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-5)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-4)
    assert mean > 3 * std > 0


def test_kid_of_one_distribution_is_about_zero_and_of_far_sets_large():
    a, b = features(200, 8, seed=4), features(200, 8, seed=5)
    same, same_std = kernel_inception_distance(a, b, subsets=10, subset_size=100)
    far, _ = kernel_inception_distance(a, features(200, 8, seed=6, shift=3.0), subsets=10)
    assert abs(same) < 3 * same_std + 1e-3
    assert far > 1.0


def test_kid_subset_size_is_capped_at_the_sample_count():
    real, fake = features(50, 4, seed=8), features(30, 4, seed=9, shift=1.0)
    assert kernel_inception_distance(real, fake, subsets=5) == kernel_inception_distance(
        real, fake, subsets=5, subset_size=30
    )


def test_kid_needs_two_samples():
    with pytest.raises(GanrunError, match="at least 2 samples"):
        kernel_inception_distance(features(1, 4, seed=0), features(10, 4, seed=1))


def test_kid_mismatched_dims():
    with pytest.raises(GanrunError, match=r"real \(10, 4\) and fake \(10, 5\)"):
        kernel_inception_distance(features(10, 4, seed=0), features(10, 5, seed=1))


# --- Inception Score --------------------------------------------------------------------------


def test_inception_score_of_uniform_predictions_is_one():
    mean, std = inception_score(torch.zeros(50, 10), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_distinct_classes_is_the_class_count():
    classes, splits = 7, 3
    logits = 100.0 * torch.eye(classes).repeat(splits, 1)  # each split: every class once
    mean, std = inception_score(logits, splits=splits, shuffle=False)
    assert mean == pytest.approx(classes, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_matches_torch_fidelity():
    logits = 3 * features(200, 12, seed=10)
    ref = isc_features_to_metric(logits, splits=4)  # shuffled with its default seed 2020
    mean, std = inception_score(logits, splits=4)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)
    assert 1.5 < mean < 12


def test_inception_score_needs_a_sample_per_split():
    with pytest.raises(GanrunError, match="splits=10"):
        inception_score(torch.zeros(5, 3), splits=10)


# --- precision / recall -----------------------------------------------------------------------


def test_precision_recall_hand_example():
    """1-D: reals at 0,1,2,3 (k=1 radii 1,1,1,1); fakes at 0.5 and 10 (radius 9.5 each)."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0]])
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == 0.5  # 0.5 lies in the reals' balls, 10 does not
    assert recall == 1.0  # the ball of radius 9.5 around 0.5 covers every real


def test_precision_recall_matches_torch_fidelity():
    real, fake = features(300, 8, seed=11), features(200, 8, seed=12, shift=0.7)
    precision, recall = precision_recall(real, fake, k=3, batch_size=64)
    ref_precision, ref_recall = calculate_precision_recall_full(fake, real, neighborhood=3)
    assert (precision, recall) == (pytest.approx(ref_precision), pytest.approx(ref_recall))
    assert 0.05 < precision < 0.95 and 0.05 < recall < 0.95


def test_precision_recall_limits():
    a = features(100, 4, seed=13)
    assert precision_recall(a, a.clone()) == (1.0, 1.0)
    assert precision_recall(a, features(100, 4, seed=14, shift=100.0)) == (0.0, 0.0)


def test_precision_recall_needs_more_than_k_samples():
    with pytest.raises(GanrunError, match="k=3"):
        precision_recall(features(3, 4, seed=0), features(10, 4, seed=1), k=3)

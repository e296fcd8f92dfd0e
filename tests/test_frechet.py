"""Feature statistics and the Frechet distance against numpy / scipy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance  # scipy.linalg.sqrtm reference

from ganrun.errors import GanrunError
from ganrun.evaluation.metrics.frechet import feature_stats, frechet_distance


def correlated_features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """ReLU of correlated Gaussians: non-negative, skewed, correlated like pool features."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(rng.standard_normal((n, d)) @ mix + shift, 0.0)


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    m1, s1 = a.mean(0), np.cov(a, rowvar=False)
    m2, s2 = b.mean(0), np.cov(b, rowvar=False)
    return float(calculate_frechet_distance(m1, s1, m2, s2))


def ours_fid(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def test_feature_stats_match_numpy():
    x = correlated_features(200, 16, seed=0)
    mu, sigma = feature_stats(torch.from_numpy(x).float())
    assert mu.dtype == sigma.dtype == torch.float64
    xf = x.astype(np.float32).astype(np.float64)  # the same float32 inputs, in float64
    np.testing.assert_allclose(mu.numpy(), xf.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(xf, rowvar=False), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("d", "n", "seed"), [(64, 500, 0), (64, 100, 1), (256, 1000, 2)])
def test_matches_scipy_sqrtm_reference(d, n, seed):
    a = correlated_features(n, d, seed)
    b = correlated_features(n, d, seed + 100, shift=0.2)
    ref = scipy_fid(a, b)
    assert ref > 0.1
    assert ours_fid(a, b) == pytest.approx(ref, rel=1e-6)


@pytest.mark.slow
def test_matches_scipy_sqrtm_reference_2048d():
    """Inception-sized statistics (minutes: scipy's sqrtm of a 2048 x 2048 matrix is slow)."""
    a = correlated_features(3000, 2048, seed=0)
    b = correlated_features(3000, 2048, seed=1, shift=0.1)
    assert ours_fid(a, b) == pytest.approx(scipy_fid(a, b), rel=1e-6)


def test_identical_statistics_give_zero():
    mu, sigma = feature_stats(correlated_features(300, 64, seed=3))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(
        0.0, abs=1e-9 * float(sigma.trace())
    )


def test_diagonal_covariances_closed_form():
    """Commuting covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2."""
    a, b = torch.tensor([1.0, 4.0, 9.0, 0.25]), torch.tensor([4.0, 1.0, 9.0, 1.0])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 0.0, 3.0])
    expected = 1.0 + 4.0 + (1 + 1 + 0 + 0.25)
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected)


def numpy_eigvals_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The same quantity by another route: eigenvalues of the (non-symmetric) product."""
    m1, s1 = a.mean(0), np.cov(a, rowvar=False)
    m2, s2 = b.mean(0), np.cov(b, rowvar=False)
    evals = np.linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * np.sqrt(evals).sum())


@pytest.mark.parametrize("case", ["fewer_samples_than_dims", "duplicated_samples", "both"])
def test_singular_covariances_are_finite_and_exact(case):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((30, 64))  # rank 29 < 64
    b = rng.standard_normal((200, 64)) + 0.3
    if case in ("duplicated_samples", "both"):
        b = np.repeat(b[:20], 10, axis=0)  # 200 rows, rank 19
    if case == "duplicated_samples":
        a = rng.standard_normal((300, 64))
    value = ours_fid(a, b)
    assert np.isfinite(value)
    assert value == pytest.approx(numpy_eigvals_fid(a, b), rel=1e-6)


def test_runs_on_numpy_statistics():
    a, b = correlated_features(100, 8, seed=5), correlated_features(100, 8, seed=6, shift=0.5)
    stats = [s.numpy() for s in (*feature_stats(a), *feature_stats(b))]
    assert frechet_distance(*stats) == pytest.approx(scipy_fid(a, b), rel=1e-6)


def test_too_few_samples():
    with pytest.raises(GanrunError, match="at least 2 samples"):
        feature_stats(torch.zeros(1, 8))


def test_non_finite_features():
    x = torch.zeros(4, 3)
    x[1, 2] = float("nan")
    with pytest.raises(GanrunError, match="NaN"):
        feature_stats(x)


def test_not_a_matrix():
    with pytest.raises(GanrunError, match="2-D"):
        feature_stats(torch.zeros(4, 3, 2))


def test_mismatched_dimensions():
    mu1, s1 = feature_stats(torch.randn(10, 4))
    mu2, s2 = feature_stats(torch.randn(10, 5))
    with pytest.raises(GanrunError, match=r"mu1 \(4,\).*mu2 \(5,\)"):
        frechet_distance(mu1, s1, mu2, s2)

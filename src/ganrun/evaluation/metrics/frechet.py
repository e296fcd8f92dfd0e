"""Feature statistics and the Frechet distance between two Gaussians (the D in FID).

    feature_stats(features)                    float64 mean and covariance (N - 1) of (N, D) features
    frechet_distance(mu1, sigma1, mu2, sigma2) ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

Why not scipy.linalg.sqrtm of S1 S2 (what pytorch-fid does): the product of two covariances is
not symmetric, so sqrtm goes through a complex Schur decomposition; it is slow (tens of seconds
for 2048-d on a CPU), and on near-singular covariances (fewer samples than dimensions,
duplicated samples) it returns complex or non-finite values that need an eps retry. Only the
trace of the square root is needed, and S1 S2 has the same eigenvalues as a symmetric positive
semi-definite matrix A: L^T S2 L with S1 = L L^T (Cholesky), or S1^(1/2) S2 S1^(1/2) when no
covariance is positive definite. Then tr((S1 S2)^(1/2)) = sum(sqrt(eigvalsh(A))), in float64
on the tensors' device, rounding negatives clamped to zero: exact in exact arithmetic, always
finite, and fast (a Cholesky and one eigenvalues-only decomposition; no complex numbers).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ganrun.errors import GanrunError


def _as_float64(x: Tensor | np.ndarray, device: torch.device | None = None) -> Tensor:
    t = torch.as_tensor(x) if isinstance(x, np.ndarray) else x
    return t.to(device=device or t.device, dtype=torch.float64)


def feature_stats(features: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D), both float64, of features (N, D) with N >= 2.

    float64 because the covariance of 2048-d features loses digits in float32 that the Frechet
    distance (a difference of large traces) then amplifies.
    """
    x = _as_float64(features)
    if x.dim() != 2:
        raise GanrunError(
            f"feature statistics need a 2-D (samples, dims) array, got shape {tuple(x.shape)}; "
            "flatten the features of each sample into one row."
        )
    n = x.shape[0]
    if n < 2:
        raise GanrunError(
            f"feature statistics need at least 2 samples for a covariance, got {n}; "
            "evaluate on more images (FID is usually computed on 10,000 or more)."
        )
    if not torch.isfinite(x).all():
        raise GanrunError(
            "the features contain NaN or inf values; the images fed to the feature network "
            "were probably not finite (check the generator's outputs)."
        )
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (n - 1)
    return mu, sigma


def _check_stats(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> None:
    d = mu1.shape[0] if mu1.dim() == 1 else -1
    shapes = {"mu1": mu1.shape, "sigma1": sigma1.shape, "mu2": mu2.shape, "sigma2": sigma2.shape}
    if d < 0 or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        got = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise GanrunError(
            f"Frechet distance needs means (D,) and covariances (D, D) of one D, got {got}; "
            "the two statistics come from different feature extractors or feature layers "
            "(recompute the reference statistics with the same network)."
        )
    for name, t in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not torch.isfinite(t).all():
            raise GanrunError(f"Frechet distance: {name} contains NaN or inf values.")


def _sqrt_psd(sigma: Tensor) -> Tensor:
    """The symmetric square root of a positive semi-definite matrix (negative rounding -> 0)."""
    evals, evecs = torch.linalg.eigh(sigma)
    return (evecs * evals.clamp(min=0).sqrt()) @ evecs.T


def _similar_symmetric(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """A symmetric PSD matrix with the eigenvalues of sigma1 sigma2.

    With a Cholesky factor S = L L^T of either covariance, L^T S' L is similar to S S' (conjugate
    by L). Cholesky costs a sixth of an eigendecomposition; it exists when that covariance is
    positive definite (the reference statistics of many samples usually are). When neither is
    (fewer samples than dimensions, duplicated samples), fall back to S1^(1/2) S2 S1^(1/2) with
    the square root from an eigendecomposition, which is defined for any PSD matrix.
    """
    for a, b in ((sigma1, sigma2), (sigma2, sigma1)):
        factor, info = torch.linalg.cholesky_ex(a)
        if int(info) == 0:
            return factor.T @ b @ factor
    root = _sqrt_psd(sigma1)
    return root @ sigma2 @ root


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """tr((sigma1 sigma2)^(1/2)) for symmetric PSD inputs: sum of sqrt(eigenvalues)."""
    a = _similar_symmetric(sigma1, sigma2)
    a = (a + a.T) / 2  # symmetric in exact arithmetic; remove rounding asymmetry before eigh
    return torch.linalg.eigvalsh(a).clamp(min=0).sqrt().sum()


def frechet_distance(
    mu1: Tensor | np.ndarray,
    sigma1: Tensor | np.ndarray,
    mu2: Tensor | np.ndarray,
    sigma2: Tensor | np.ndarray,
) -> float:
    """The squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Runs on mu1's device when it is a tensor (numpy inputs run on the CPU). The result is
    clamped at 0: it is a squared distance, and identical statistics give a rounding residue
    around 1e-10 of either sign.
    """
    device = mu1.device if isinstance(mu1, Tensor) else torch.device("cpu")
    mu1, sigma1, mu2, sigma2 = (_as_float64(t, device) for t in (mu1, sigma1, mu2, sigma2))
    _check_stats(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    tr_covmean = trace_sqrt_product(sigma1, sigma2)
    fd = diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * tr_covmean
    return max(float(fd), 0.0)

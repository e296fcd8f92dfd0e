"""Kernel Inception Distance (Binkowski et al. 2018): an unbiased MMD^2 between feature sets.

Unlike FID it has an unbiased estimator, so values from different sample counts compare. As in
torch-fidelity (and Binkowski's reference code): the polynomial kernel k(x, y) = (x.y / d + 1)^3,
the unbiased MMD^2 averaged over `subsets` random subsets of `subset_size` features of each set
(drawn without replacement by numpy's RandomState(seed), the same draws as torch-fidelity for
the same seed), reported as mean and (population) standard deviation over the subsets.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ganrun.errors import GanrunError


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """(x y^T / d + 1)^3 for x (n, d), y (m, d): the kernel KID is defined with."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD^2 between equal-size samples x, y (m, d): the diagonals of K_xx, K_yy dropped."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return within - 2 * k_xy.sum() / (m * m)


def _check_features(real: Tensor, fake: Tensor) -> None:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise GanrunError(
            f"KID needs two (samples, dims) feature sets of the same dims, got real "
            f"{tuple(real.shape)} and fake {tuple(fake.shape)}; compute both with one network."
        )


def kernel_inception_distance(
    real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` subsets of min(subset_size, N) features.

    Computed in float64 on the features' device: the cubic kernel of 2048-d features sums
    millions of terms of size ~1 whose difference is ~1e-3.
    """
    _check_features(real, fake)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise GanrunError(
            f"KID needs subsets of at least 2 samples, got subset_size={subset_size} with "
            f"{len(real)} real and {len(fake)} fake samples; evaluate on more images "
            "(metrics.kid.subset_size is capped at the number of samples)."
        )
    if subsets < 1:
        raise GanrunError(f"KID subsets must be >= 1, got {subsets}.")
    real, fake = real.double(), fake.double().to(real.device)
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        # Draw order as torch-fidelity: the real subset then the fake subset, per round.
        r = torch.from_numpy(rng.choice(len(real), size, replace=False)).to(real.device)
        f = torch.from_numpy(rng.choice(len(fake), size, replace=False)).to(real.device)
        mmds.append(mmd2_unbiased(real[r], fake[f]))
    values = torch.stack(mmds)
    return float(values.mean()), float(values.std(unbiased=False))

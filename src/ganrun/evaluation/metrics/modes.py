"""Mode-collapse metrics for 2-D Gaussian mixtures (VEEGAN, Srivastava et al. 2017; PacGAN).

Each generated point is assigned to its nearest mixture mean. A point is high quality when
it lies within `radius` (3) standard deviations of that mean. Then:

    modes       number of means that are the nearest mean of at least one high-quality point
    hq_pct      percentage of points that are high quality
    reverse_kl  KL(q || uniform) = sum_k q_k log(q_k K), over the non-empty bins of q, the
                histogram of nearest means of the high-quality points (natural log; 0 when
                every mode gets the same share, log K when all points sit on one mode)

When no point is high quality, q is built from every point's nearest mean instead, so that
reverse_kl stays finite and still measures how spread out the samples are (modes and hq_pct
are 0 then, which is what flags the failure).
"""

from __future__ import annotations

import torch
from torch import Tensor


def mode_metrics(
    points: Tensor, means: Tensor, std: float, radius: float = 3.0
) -> dict[str, float]:
    """{"modes", "hq_pct", "reverse_kl"} for `points` (n, 2) against `means` (K, 2), as floats."""
    if points.ndim != 2 or means.ndim != 2 or points.shape[1] != means.shape[1]:
        raise ValueError(
            f"points {tuple(points.shape)} and means {tuple(means.shape)} must be (n, d), (K, d)"
        )
    if len(points) == 0:
        raise ValueError("mode_metrics needs at least one point")
    points, means = points.detach().double().cpu(), means.detach().double().cpu()
    dist, nearest = torch.cdist(points, means).min(dim=1)
    hq = dist <= radius * std
    K = len(means)
    counts = torch.bincount(nearest[hq] if hq.any() else nearest, minlength=K)
    return {
        "modes": float((torch.bincount(nearest[hq], minlength=K) > 0).sum()),
        "hq_pct": 100.0 * hq.double().mean().item(),
        "reverse_kl": reverse_kl_uniform(counts),
    }


def reverse_kl_uniform(counts: Tensor) -> float:
    """KL(q || uniform over K = len(counts)) of the histogram q = counts / counts.sum(), in nats.

    Empty bins contribute 0: 0 when every bin has the same count, log K when one bin has all.
    Shared with other mode counters (stacked MNIST's 1000 digit triples).
    """
    counts = counts.detach().double().cpu()
    if counts.sum() <= 0:
        raise ValueError("reverse_kl_uniform needs at least one count")
    q = counts[counts > 0] / counts.sum()
    return max(0.0, (q * (q * len(counts)).log()).sum().item())

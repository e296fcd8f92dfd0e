"""The sample-quality metrics `ganrun eval` and training can report, one class each.

Each is selected by `_target_` in conf/metrics/<name>.yaml (`metrics=[fid,kid,is,pr]`), knows
what it needs (real features or fake logits beyond the Gaussian statistics), refuses sample
counts it cannot work with, and returns its values under flat names:

    fid                  Frechet distance between Gaussian fits (Heusel et al. 2017)
    kid, kid_std         kernel (cubic polynomial MMD^2) distance over random subsets (of at
                         most metrics.kid.subset_size: capped at the smaller set's size)
    is, is_std           Inception Score of the fakes over splits (any classifier's logits)
    precision, recall    k-NN manifold precision and recall (Kynkaanniemi et al. 2019)

The arithmetic lives in frechet.py, kid.py, inception_score.py and precision_recall.py;
these classes only adapt them to one calling convention.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from ganrun.evaluation.metrics.frechet import feature_stats, frechet_distance
from ganrun.evaluation.metrics.inception_score import inception_score
from ganrun.evaluation.metrics.kid import kernel_inception_distance
from ganrun.evaluation.metrics.precision_recall import precision_recall
from ganrun.evaluation.reference import Reference


class Metric(Protocol):
    needs_real_features: bool  # the reference must keep its features (not just mu, sigma)

    def problem(self, n_real: int, n_fake: int, dims: int, has_logits: bool) -> str | None:
        """Why these counts cannot give this metric (None when they can)."""
        ...

    def __call__(self, real: Reference, fake: Tensor, logits: Tensor | None) -> dict[str, float]:
        """Values under flat names, from the reference and the fakes' features and logits."""
        ...


class FID:
    needs_real_features = False

    def __init__(self, weights: str | None = None) -> None:
        # metrics.fid.weights names the Inception file (an FID is defined by its network); the
        # extractor reads it (conf/metrics/features/inception.yaml), the arithmetic needs none
        self.weights = weights

    def problem(self, n_real: int, n_fake: int, dims: int, has_logits: bool) -> str | None:
        n = min(n_real, n_fake)
        if n > dims:
            return None
        return (
            f"fid: {n} samples for {dims}-d features; a covariance of full rank needs more "
            f"samples than dimensions (at least {dims + 1} real and {dims + 1} generated)."
        )

    def __call__(self, real: Reference, fake: Tensor, logits: Tensor | None) -> dict[str, float]:
        mu, sigma = feature_stats(fake)
        return {"fid": float(frechet_distance(mu, sigma, real.mu, real.sigma))}


class KID:
    needs_real_features = True

    def __init__(self, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> None:
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed

    def problem(self, n_real: int, n_fake: int, dims: int, has_logits: bool) -> str | None:
        n = min(n_real, n_fake, self.subset_size)  # subsets are capped at the smaller set
        if n >= 2 and self.subsets >= 1:
            return None
        return (
            f"kid: subsets of {n} samples (metrics.kid.subset_size={self.subset_size}, "
            f"metrics.kid.subsets={self.subsets}); KID needs subsets of at least 2 samples and "
            f"metrics.kid.subsets >= 1."
        )

    def __call__(self, real: Reference, fake: Tensor, logits: Tensor | None) -> dict[str, float]:
        mean, std = kernel_inception_distance(
            real.features, fake, self.subsets, self.subset_size, self.seed
        )
        return {"kid": float(mean), "kid_std": float(std)}


class InceptionScore:
    needs_real_features = False

    def __init__(self, splits: int = 10) -> None:
        self.splits = splits

    def problem(self, n_real: int, n_fake: int, dims: int, has_logits: bool) -> str | None:
        if not has_logits:
            return "is: this feature extractor gives no class logits, so no Inception Score."
        if 1 <= self.splits <= n_fake:
            return None
        return (
            f"is: metrics.is.splits={self.splits} with {n_fake} generated samples; it must be "
            f"between 1 and the number of samples."
        )

    def __call__(self, real: Reference, fake: Tensor, logits: Tensor | None) -> dict[str, float]:
        mean, std = inception_score(logits, self.splits)
        return {"is": float(mean), "is_std": float(std)}


class PrecisionRecall:
    needs_real_features = True

    def __init__(self, k: int = 3) -> None:
        self.k = k

    def problem(self, n_real: int, n_fake: int, dims: int, has_logits: bool) -> str | None:
        n = min(n_real, n_fake)
        if 1 <= self.k < n:
            return None
        return (
            f"pr: metrics.pr.k={self.k} nearest neighbours with {n} samples per set; k must be "
            f"at least 1 and below the smaller set's size."
        )

    def __call__(self, real: Reference, fake: Tensor, logits: Tensor | None) -> dict[str, float]:
        precision, recall = precision_recall(real.features, fake, self.k)
        return {"precision": float(precision), "recall": float(recall)}

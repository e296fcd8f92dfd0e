"""Orchestration: real reference + a stream of fake images -> the chosen metrics, one dict.

    evaluator = ImageEvaluator(extractor, metrics, real_set, n_real, fake_shape, n_fake, fix)
    result = evaluator(fake_chunks)      # EvalResult: {"fid": ..., "kid": ...}, extractor name

Training builds one evaluator before its first step (so missing weights, too few samples or
mismatched image shapes fail before any work) and calls it on every eval step; `ganrun
eval` builds one per invocation. Fakes arrive as uint8 chunks, exactly what a samples.npz
holds, so evaluating a checkpoint and evaluating its `ganrun sample` output agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ganrun.build import make
from ganrun.errors import GanrunError
from ganrun.evaluation.features.extractor import FeatureExtractor, extract
from ganrun.evaluation.imagesets import ImageSet, describe
from ganrun.evaluation.metrics.scores import Metric
from ganrun.evaluation.reference import reference_stats
from ganrun.sampling.generate import generate
from ganrun.sampling.images import to_uint8

FEATURES_KEY = "features"  # metrics.features is the extractor; every other entry a metric


@dataclass
class EvalResult:
    values: dict[str, float]  # flat: fid, kid, kid_std, is, is_std, precision, recall
    features: str  # the extractor that produced them (a digit-classifier FID is no Inception FID)
    dims: int  # feature width
    n_real: int
    n_fake: int


def build_metrics(node: Mapping[str, Any]) -> dict[str, Metric]:
    """The chosen metrics (every entry of the `metrics` node but the extractor), built."""
    return {
        name: make(sub, f"metrics.{name}") for name, sub in node.items() if name != FEATURES_KEY
    }


def build_extractor(node: Any, device: torch.device) -> FeatureExtractor:
    """The extractor metrics.features names (its weights are checked here, before any work)."""
    return make(node, "metrics.features", device=device)


def generated_images(
    G: nn.Module, z: Tensor, labels: Tensor | None, batch_size: int, **truncation: Any
) -> Iterator[Tensor]:
    """G's samples for z (and labels) as uint8 chunks, so n can exceed memory as floats;
    `truncation` (truncation=, truncation_cutoff=) goes to generate()."""
    label_chunks = [None] * len(z.split(batch_size)) if labels is None else labels.split(batch_size)
    for zc, yc in zip(z.split(batch_size), label_chunks):
        yield to_uint8(generate(G, zc, batch_size, yc, **truncation))


def check_shapes(real: ImageSet, fake_shape: tuple[int, ...], fake_label: str) -> None:
    """Both sets must show images of one size and channel count (FID resizes nothing)."""
    if tuple(real.shape) != tuple(fake_shape):
        raise GanrunError(
            f"the real images ({real.label}) are {describe(tuple(real.shape))} but the "
            f"generated ones ({fake_label}) are {describe(tuple(fake_shape))}; metrics compare "
            f"sets of one size and channel count. Evaluate against real images of the "
            f"generator's resolution (e.g. dataset.resolution={fake_shape[-1]})."
        )


class ImageEvaluator:
    """An extractor, the chosen metrics and the real reference: fakes in, metrics out."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        metrics: Mapping[str, Metric],
        real: ImageSet,
        n_real: int,
        fake_shape: tuple[int, ...],
        n_fake: int,
        fix: str,
        fake_label: str = "generator",
        cache: bool = True,
    ) -> None:
        """Checks shapes, computes (or reads) the reference and checks the sample counts.

        `fix` ends every count error: the key to change (n=, trainer.eval_samples=, ...).
        """
        self.extractor, self.metrics, self.fix = extractor, dict(metrics), fix
        check_shapes(real, fake_shape, fake_label)
        need_features = any(m.needs_real_features for m in self.metrics.values())
        self.reference = reference_stats(real, n_real, extractor, need_features, cache)
        self.dims = len(self.reference.mu)
        self._check(n_fake, has_logits=True)  # logits are checked once the fakes are in

    def _check(self, n_fake: int, has_logits: bool) -> None:
        problems = [
            p
            for m in self.metrics.values()
            if (p := m.problem(self.reference.n, n_fake, self.dims, has_logits)) is not None
        ]
        if problems:
            raise GanrunError(
                f"{' '.join(problems)} (features: {self.extractor.name}, {self.reference.n} "
                f"real and {n_fake} generated images.) {self.fix}"
            )

    def __call__(self, fake_chunks: Iterable[Tensor]) -> EvalResult:
        fake, logits = extract(self.extractor, fake_chunks)
        self._check(len(fake), logits is not None)
        values: dict[str, float] = {}
        for metric in self.metrics.values():
            values.update(metric(self.reference, fake, logits))
        return EvalResult(values, self.extractor.name, self.dims, self.reference.n, len(fake))

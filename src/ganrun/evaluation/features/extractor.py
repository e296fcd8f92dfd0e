"""Feature extractors: the contract FID/KID/IS/PR rely on, and the offline digit extractor.

An extractor maps images (uint8 in [0, 255] or float in [-1, 1], (N, C, H, W)) to a feature
vector per image and, when it is a classifier, class logits (for the Inception Score). Its
`name` travels with every result, because an FID in one feature space is not comparable with
an FID in another: a digit-classifier FID is not an Inception FID.

Which extractor a run uses is a config choice (`metrics/features=inception|digit_classifier`,
each a `_target_` in conf/metrics/features/); every dataset config names its default.

`DigitFeatures` wraps the MNIST digit classifier (scripts/train_digit_classifier.py): its
128-d penultimate activations are the features, its 10 class logits the logits. It works on
these offline machines, where the Inception weights may not exist. Images with several
channels (Stacked MNIST: one digit per channel) are split into their channels; the features
of the channels are concatenated (3 x 128 = 384-d, so FID sees the joint distribution of the
three digits, not three marginals) and the logits become the joint log-probabilities of the
10^C digit tuples (1,000 classes for Stacked MNIST, each the sum of the channels'
log-softmax), so the Inception Score counts digit triples. An RGB image that is not a digit
stack is read the same way; the digit classifier is no feature space for natural images.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ganrun.data.base import from_uint8
from ganrun.evaluation.features.digit_classifier import (
    FEATURES,
    NUM_CLASSES,
    default_classifier_path,
    load_digit_classifier,
)

MAX_JOINT_CHANNELS = 3  # 10^C joint classes: 1,000 at C=3; beyond that IS gets no logits


@runtime_checkable
class FeatureExtractor(Protocol):
    """What the metrics need from a feature network (Inception, the digit classifier, ...)."""

    name: str  # names the feature space in every result (eval.json, metrics.jsonl, tables)
    dims: int  # feature width per image (per channel for DigitFeatures)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """(features (N, D), logits (N, K) or None), float32 on any device (extract() gathers
        them on the CPU)."""
        ...


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]; float images are taken to be in [-1, 1] already."""
    if images.dtype == torch.uint8:
        return from_uint8(images)
    return images.float()


def joint_logits(logits: Tensor) -> Tensor:
    """Per-channel logits (N, C, K) -> log-probabilities of the K^C tuples (N, K^C).

    Tuple (k0, ..., k_{C-1}) sits at index k0 K^{C-1} + ... + k_{C-1}: for digits the
    number written by the tuple, as in Stacked MNIST's labels (100 d0 + 10 d1 + d2).
    """
    logp = torch.log_softmax(logits, dim=-1)
    joint = logp[:, 0]
    for c in range(1, logp.shape[1]):
        joint = (joint[:, :, None] + logp[:, c, None, :]).flatten(1)
    return joint


def weights_fingerprint(path: str | Path | None) -> dict[str, object] | None:
    """Path, size and mtime of a weights file: cheap, and changes when the file is replaced."""
    if path is None:
        return None
    p = Path(path).resolve()
    if not p.is_file():
        return {"path": str(p)}
    stat = p.stat()
    return {"path": str(p), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def extractor_identity(extractor: FeatureExtractor) -> dict[str, object]:
    """What makes two extractors' features comparable: name, width and the weights file.

    Extractors that read weights from a file expose it as `weights_path` (so a retrained
    classifier or another Inception file gets its own cached reference statistics).
    """
    return {
        "name": extractor.name,
        "dims": extractor.dims,
        "weights": weights_fingerprint(getattr(extractor, "weights_path", None)),
    }


class DigitFeatures(nn.Module):
    """The MNIST digit classifier as a feature extractor (offline FID for digit datasets)."""

    name = "digit-classifier"
    dims = FEATURES  # per channel: C-channel images give C x 128 features

    def __init__(
        self, weights: str | None = None, device: str | torch.device = "cpu", batch_size: int = 1000
    ) -> None:
        super().__init__()
        self.weights_path = Path(weights) if weights else default_classifier_path()
        self.net = load_digit_classifier(self.weights_path).to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """(features (N, C * 128), logits (N, 10^C) or None for C > 3) on the CPU."""
        if images.dim() != 4:
            raise ValueError(f"expected images (N, C, H, W), got {tuple(images.shape)}")
        n, c, h, w = images.shape
        feats, logits = [], []
        for chunk in images.split(max(1, self.batch_size // c)):
            grey = to_unit_range(chunk.to(self.device)).reshape(-1, 1, h, w)
            f = self.net.features(grey)
            feats.append(f.reshape(len(chunk), c * FEATURES).float().cpu())
            logits.append(self.net.head(f).reshape(len(chunk), c, NUM_CLASSES).float().cpu())
        if n == 0:
            return torch.zeros(0, c * FEATURES), None
        per_channel = torch.cat(logits)
        joint = joint_logits(per_channel) if c <= MAX_JOINT_CHANNELS else None
        return torch.cat(feats), joint


def extract(extractor: FeatureExtractor, chunks: Iterable[Tensor]) -> tuple[Tensor, Tensor | None]:
    """Features (N, D) and logits (N, K) or None of a stream of image chunks, on the CPU.

    Only the features are kept, never the images, so the stream can be longer than memory.
    """
    feats, logits = [], []
    for chunk in chunks:
        f, lg = extractor(chunk)
        feats.append(f.float().cpu())
        if lg is not None:
            logits.append(lg.float().cpu())
    if not feats:
        raise ValueError("extract needs at least one chunk of images")
    return torch.cat(feats), (torch.cat(logits) if len(logits) == len(feats) else None)

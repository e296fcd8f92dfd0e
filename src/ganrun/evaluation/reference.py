"""Reference statistics of real images, computed once and cached on disk.

Extracting features of 10,000-50,000 real images takes minutes on a CPU (Inception) and
gives the same numbers every time, so the result is kept in
$GANRUN_CACHE/refstats/<label>-<extractor>-n<N>-<hash>.npz and reused. The hash covers
everything that decides those numbers: the image set's identity (dataset target, root,
split, resolution, channels, ... or a folder's file listing), the extractor (name, width,
weights file size and mtime) and the sample count. Any change gives a new file; nothing is
ever reused across feature spaces.

The file holds mu and sigma (float64, for FID) and, once a metric has needed them, the
features themselves (float32, for KID and precision/recall). It is written atomically, so
two runs racing to fill the cache leave one whole file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ganrun.atomic_io import atomic_write
from ganrun.cache import cache_dir
from ganrun.evaluation.features.extractor import FeatureExtractor, extract, extractor_identity
from ganrun.evaluation.imagesets import ImageSet
from ganrun.evaluation.metrics.frechet import feature_stats

log = logging.getLogger("ganrun")

FORMAT = 1  # bump when the file layout or the way statistics are computed changes
CHUNK = 500  # real images per extractor call


@dataclass
class Reference:
    """Statistics of n real images in one feature space."""

    mu: Tensor  # (D,) float64
    sigma: Tensor  # (D, D) float64
    features: Tensor | None  # (n, D) float32, kept when KID / PR need them
    n: int
    extractor: str
    path: Path | None = None  # the cache file it was read from or written to


def reference_key(images: ImageSet, n: int, extractor: FeatureExtractor) -> dict:
    """Everything that decides the statistics, as plain JSON values."""
    return {
        "format": FORMAT,
        "images": images.identity(),
        "n": n,
        "extractor": extractor_identity(extractor),
    }


def reference_path(images: ImageSet, n: int, extractor: FeatureExtractor) -> Path:
    """$GANRUN_CACHE/refstats/<readable name>-<16 hex digits of the key's hash>.npz."""
    key = json.dumps(reference_key(images, n, extractor), sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{images.label}-{extractor.name}-n{n}")
    return cache_dir() / "refstats" / f"{name}-{digest}.npz"


def _load(path: Path, extractor: str) -> Reference | None:
    """The cached statistics, or None when the file is unreadable (it is then recomputed)."""
    try:
        with np.load(path) as npz:
            arrays = {k: torch.from_numpy(npz[k]) for k in npz.files}
        return Reference(
            arrays["mu"], arrays["sigma"], arrays.get("features"), int(arrays["n"]), extractor, path
        )
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file is recomputed
        log.warning("reference statistics %s unreadable (%s); recomputing", path, err)
        return None


def _save(ref: Reference, path: Path) -> None:
    arrays = {"mu": ref.mu.numpy(), "sigma": ref.sigma.numpy(), "n": np.array(ref.n)}
    if ref.features is not None:
        arrays["features"] = ref.features.numpy()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def reference_stats(
    images: ImageSet,
    n: int,
    extractor: FeatureExtractor,
    need_features: bool = False,
    cache: bool = True,
) -> Reference:
    """Statistics of the first n images of `images` (all when n >= len): cached or computed.

    A cached file without features is recomputed (and rewritten with them) when a metric
    needs the features; cache=False computes and writes nothing.
    """
    n = min(n, len(images))
    path = reference_path(images, n, extractor) if cache else None
    if path is not None and path.is_file():
        ref = _load(path, extractor.name)
        if ref is not None and (ref.features is not None or not need_features):
            log.info("reference statistics: %s (cached)", path)
            return ref
    features, _ = extract(extractor, images.chunks(n, CHUNK))
    mu, sigma = feature_stats(features)
    ref = Reference(
        mu.cpu().double(),
        sigma.cpu().double(),
        features if need_features else None,
        len(features),
        extractor.name,
        path,
    )
    if path is not None:
        _save(ref, path)
        log.info("reference statistics: %s (computed from %d images)", path, ref.n)
    return ref

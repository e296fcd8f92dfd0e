"""Improved precision and recall (Kynkaanniemi et al. 2019) from feature k-NN balls.

Each set's manifold is the union of balls around its samples, each with the radius of the
distance to the sample's k-th nearest neighbour in its own set (k = 3 in the paper).
precision = share of fake samples inside the real manifold (are the samples realistic?),
recall = share of real samples inside the fake manifold (is the data's variety covered?).
A point on a ball's boundary counts as inside, as in the paper's code and torch-fidelity.

Distances are computed in row batches of `batch_size` so memory stays O(batch_size * N), in
float32 on the features' device (the radii only need ranking precision).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganrun.errors import GanrunError


def knn_radii(features: Tensor, k: int, batch_size: int) -> Tensor:
    """Distance of each sample to its k-th nearest neighbour among the others (N,)."""
    radii = [
        # k + 1: the sample itself is its own nearest neighbour, at distance 0.
        torch.cdist(rows, features).kthvalue(k + 1, dim=1).values
        for rows in features.split(batch_size)
    ]
    return torch.cat(radii)


def coverage(queries: Tensor, centres: Tensor, radii: Tensor, batch_size: int) -> float:
    """Share of queries within radii[j] of some centres[j]."""
    inside = [
        (torch.cdist(rows, centres) <= radii).any(dim=1) for rows in queries.split(batch_size)
    ]
    return float(torch.cat(inside).float().mean())


def precision_recall(
    real: Tensor, fake: Tensor, k: int = 3, batch_size: int = 10000
) -> tuple[float, float]:
    """(precision, recall) of fake features (M, D) against real features (N, D)."""
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise GanrunError(
            f"precision/recall need two (samples, dims) feature sets of the same dims, got real "
            f"{tuple(real.shape)} and fake {tuple(fake.shape)}; compute both with one network."
        )
    if k < 1 or min(len(real), len(fake)) <= k:
        raise GanrunError(
            f"precision/recall with k={k} nearest neighbours need more than k samples in each "
            f"set, got {len(real)} real and {len(fake)} fake; evaluate on more images or lower k."
        )
    if batch_size < 1:
        raise GanrunError(f"precision/recall batch_size must be >= 1, got {batch_size}.")
    real, fake = real.float(), fake.float().to(real.device)
    precision = coverage(fake, real, knn_radii(real, k, batch_size), batch_size)
    recall = coverage(real, fake, knn_radii(fake, k, batch_size), batch_size)
    return precision, recall

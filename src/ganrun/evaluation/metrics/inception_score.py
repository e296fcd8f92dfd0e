"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), per split.

As torch-fidelity: the logits are shuffled once with numpy's RandomState(seed) (seed 2020 and
shuffling on are its defaults, so the same logits give the same score), softmaxed in float64,
cut into `splits` consecutive chunks; p(y) is each chunk's mean prediction. Returns the mean
and (population) standard deviation of the per-split scores. The score ranges from 1 (every
prediction the same) to the number of classes (confident, evenly spread predictions).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ganrun.errors import GanrunError


def inception_score(
    logits: Tensor, splits: int = 10, shuffle: bool = True, seed: int = 2020
) -> tuple[float, float]:
    """(mean, std) of the Inception Score of logits (N, classes) over `splits` chunks."""
    if logits.dim() != 2:
        raise GanrunError(
            f"the Inception Score needs (samples, classes) logits, got shape {tuple(logits.shape)}."
        )
    n = logits.shape[0]
    if splits < 1 or n < splits:
        raise GanrunError(
            f"the Inception Score needs at least one sample per split, got {n} samples and "
            f"splits={splits}; lower metrics.is.splits or evaluate on more images."
        )
    if shuffle:
        order = torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)
        logits = logits[order]
    logits = logits.double()
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        p_y = p[chunk].mean(dim=0, keepdim=True)
        kl = (p[chunk] * (log_p[chunk] - p_y.log())).sum(dim=1).mean()
        scores.append(kl.exp())
    values = torch.stack(scores)
    return float(values.mean()), float(values.std(unbiased=False))

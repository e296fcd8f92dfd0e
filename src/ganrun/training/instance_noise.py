"""Instance noise: Gaussian noise on D's inputs, annealed to 0 (a stabiliser, not an augmentation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def with_instance_noise(D: Callable[..., Tensor], std: float) -> Callable[..., Tensor]:
    """D(x + N(0, std^2)) on every input, or D itself when std is 0 (instance noise:
    Sonderby et al. 2016, Arjovsky & Bottou 2017; the loop anneals std to 0)."""
    if std <= 0:
        return D
    return lambda x, *args, **kwargs: D(x + std * torch.randn_like(x), *args, **kwargs)

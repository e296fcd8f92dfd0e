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


class InstanceNoise:
    """The noise std at each step: `std` at step 0, linearly to 0 over `steps` (0: the run)."""

    def __init__(self, std: float, steps: int, max_steps: int) -> None:
        self.initial, self.horizon = std, steps or max_steps

    def std(self, step: int) -> float:
        if self.initial <= 0:
            return 0.0
        return self.initial * max(0.0, 1.0 - step / self.horizon)

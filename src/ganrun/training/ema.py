"""Exponential moving average of a player's weights (samples and evaluations use the copy).

Two ways to say how fast it moves:
- a fixed decay per step (`trainer.ema_decay`, warmed up over the first steps), or
- StyleGAN's half-life in images (`trainer.ema_kimg`: the EMA forgets half of the old weights
  every ema_kimg * 1000 images), optionally ramped up (`trainer.ema_rampup`: the half-life is
  at most ema_rampup x the images seen so far, so early weights are not kept for long).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ganrun.errors import GanrunError


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy in eval mode that `update_ema` keeps in step with `model`."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


@dataclass
class EmaRate:
    """The per-step decay of the EMA, from the trainer keys."""

    decay: float = 0.999  # fixed decay per step (schedule=... may move it)
    kimg: float = 0.0  # > 0: half-life in thousands of images instead of the fixed decay
    rampup: float | None = None  # with kimg: half-life <= rampup x images seen

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise GanrunError(f"trainer.ema_decay={self.decay} must be in [0, 1).")
        if not self.kimg >= 0:  # NaN fails this too
            raise GanrunError(f"trainer.ema_kimg={self.kimg} must be >= 0 (0: use ema_decay).")
        if self.rampup is not None and not self.rampup > 0:
            raise GanrunError(f"trainer.ema_rampup={self.rampup} must be > 0, or null (off).")

    def beta(self, step: int, images_seen: int, images_per_step: int) -> float:
        """The decay for the update after `step` (0-based), `images_seen` before it."""
        if self.kimg <= 0:
            # warm-up: early samples do not average in the random initialisation
            return min(self.decay, (1 + step) / (10 + step))
        half_life = self.kimg * 1000.0
        if self.rampup is not None:
            half_life = min(half_life, (images_seen + images_per_step) * self.rampup)
        return 0.5 ** (images_per_step / max(half_life, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model. Buffers (BatchNorm statistics) are copied."""
    ema_params = list(ema.parameters())
    params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)

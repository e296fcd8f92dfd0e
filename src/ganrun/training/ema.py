"""Exponential moving average of the generator's weights (samples come from the EMA copy)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy in eval mode that `update_ema` keeps in step with `model`."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """ema <- decay * ema + (1 - decay) * model, with the decay warmed up over early steps.

    The warm-up min(decay, (1 + step) / (10 + step)) keeps early samples from averaging
    in the random initialisation. Buffers (BatchNorm statistics) are copied as they are.
    """
    d = min(decay, (1 + step) / (10 + step))
    ema_params = list(ema.parameters())
    params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_params, params, 1.0 - d)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)

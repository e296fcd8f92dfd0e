"""Mixed precision: the autocast context of trainer.precision, and the grad scaler's current
loss scale that the penalties need.

Gradient penalties take a gradient inside the loss (torch.autograd.grad). Under fp16 that
inner gradient must follow the PyTorch AMP recipe: differentiate the *scaled* output, then
unscale. The method owns the scaler; the loss only receives its scale as a tensor.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor


def loss_scale(scaler: torch.amp.GradScaler, device: torch.device) -> Tensor | None:
    """The scaler's current scale as a 0-d tensor on `device`, or None when it is disabled.

    scaler.scale(1) rather than scaler.get_scale(): the latter reads the scale back to the
    host, a device synchronisation on every D step.
    """
    if not scaler.is_enabled():
        return None
    return scaler.scale(torch.ones((), device=device))


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_factory(device: torch.device, precision: str) -> Callable[[], AbstractContextManager]:
    """A context-manager factory: autocast to the trainer.precision dtype, or no-op (fp32)."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=dtype)

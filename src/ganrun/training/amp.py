"""The grad scaler's side of mixed precision that the losses need: the current loss scale.

Gradient penalties take a gradient inside the loss (torch.autograd.grad). Under fp16 that
inner gradient must follow the PyTorch AMP recipe: differentiate the *scaled* output, then
unscale. The loop owns the scaler; the loss only receives its scale as a tensor.
"""

from __future__ import annotations

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

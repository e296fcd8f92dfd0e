"""The optimizer side of a training phase, shared by every method: backward through the grad
scaler over micro-batches (gradient accumulation), gradient sync on the last one only (DDP),
clipping of the true gradients, the optimizer step."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ganrun.training.nonfinite import gradients_finite
from ganrun.training.players import Player


def sync_if(net: nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """DDP: no gradient all-reduce except on the last micro-batch of an accumulated step."""
    if last or not isinstance(net, DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()


def backward(loss: Tensor, player: Player, micro_batches: int = 1) -> None:
    """Add this micro-batch's gradients: the mean over k micro-batches of B is the gradient of
    one batch of kB for losses that are batch means (k = 1 leaves the loss untouched)."""
    if micro_batches > 1:
        loss = loss / micro_batches
    player.scaler.scale(loss).backward()


def apply_gradients(player: Player, clip: float = 0.0) -> None:
    """Step the optimizer through the grad scaler; clip > 0 caps the global gradient norm of
    the unscaled gradients first. A player with skip_nonfinite drops an update whose
    gradients hold a NaN or inf (under fp16 the grad scaler already does, and rescales)."""
    if player.skip_nonfinite and not player.scaler.is_enabled():
        if not gradients_finite(player.opt):
            player.opt.zero_grad(set_to_none=True)
            player.skipped += 1
            return
    if clip > 0:
        player.scaler.unscale_(player.opt)  # clip the true gradients, not the loss-scaled ones
        params = [p for group in player.opt.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, clip)
    player.scaler.step(player.opt)
    player.scaler.update()


def optimizer_step(loss: Tensor, player: Player, clip: float = 0.0) -> None:
    """zero_grad + backward + step: one phase on one batch."""
    player.opt.zero_grad(set_to_none=True)
    backward(loss, player)
    apply_gradients(player, clip)


def mean_logs(logs: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The micro-batches' logs averaged (one micro-batch: its logs as they are)."""
    if len(logs) == 1:
        return logs[0]
    return {k: torch.stack([entry[k] for entry in logs]).mean() for k in logs[0]}

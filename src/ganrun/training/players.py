"""A player: one network with what trains it (optimizer, grad scaler) and its EMA copy.

Methods name their players ("G" and "D" for a GAN; two of each for CycleGAN). The loop,
the checkpoints and the speed settings only ever iterate over them, so they never need to
know how many networks a method has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DDP / augmentation wrappers, however nested
    (DDP around an augmented D), so checkpoints load anywhere."""
    inner = getattr(model, "_orig_mod", None)
    if inner is None:
        inner = getattr(model, "module", None)
    return unwrap(inner) if isinstance(inner, nn.Module) else model


@dataclass
class Player:
    net: nn.Module  # what trains (possibly wrapped: compiled, DDP)
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # enabled under fp16 only
    ema: nn.Module | None = None  # the EMA copy that samples and evaluations use
    # StyleGAN2's lazy-regularisation correction for a player regularised every k steps:
    # lr x k/(k+1), Adam betas ^ k/(k+1) (1.0: no correction); schedules keep applying it
    reg_ratio: float = 1.0
    # trainer.on_nonfinite=skip: drop an update whose gradients are not finite (counted)
    skip_nonfinite: bool = False
    skipped: int = 0  # updates dropped so far in this process

    def state_dict(self) -> dict[str, Any]:
        out = {
            "net": unwrap(self.net).state_dict(),
            "opt": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.ema is not None:
            out["ema"] = unwrap(self.ema).state_dict()
        return out

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        unwrap(self.net).load_state_dict(saved["net"])
        self.opt.load_state_dict(saved["opt"])
        self.scaler.load_state_dict(saved["scaler"])
        if self.ema is not None:
            unwrap(self.ema).load_state_dict(saved["ema"])

    def base_lr(self) -> float:
        """The first param group's lr without the lazy-regularisation correction: the value
        the config (or a schedule) set, as logged under lr/<player>."""
        return self.opt.param_groups[0]["lr"] / self.reg_ratio

    def modules(self) -> list[nn.Module]:
        """The network and its EMA copy (what moves to a device or a memory format)."""
        return [self.net] + ([] if self.ema is None else [self.ema])

"""The original WGAN (Arjovsky et al. 2017): the Wasserstein critic kept Lipschitz by clipping
every weight of D to [-clip, clip] after each of its optimizer steps."""

from __future__ import annotations

import torch
from torch import nn

from ganrun.losses.penalties import Penalty
from ganrun.losses.wgan import WassersteinLoss


class ClippedWassersteinLoss(WassersteinLoss):
    def __init__(self, clip: float = 0.01, penalties: dict[str, Penalty] | None = None) -> None:
        if clip <= 0:
            raise ValueError(f"weight clipping bound clip={clip} must be > 0")
        super().__init__(penalties)
        self.clip = clip

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        for p in D.parameters():
            p.clamp_(-self.clip, self.clip)

"""Non-saturating GAN: the minimax D, and G maximising log D(G(z)) (Goodfellow et al. 2014)."""

from __future__ import annotations

from torch import Tensor

from ganrun.losses.base import mean_softplus
from ganrun.losses.minimax import MinimaxLoss


class NonSaturatingLoss(MinimaxLoss):
    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        # -log(sigmoid(f)) = softplus(-f)
        return mean_softplus(-fake)

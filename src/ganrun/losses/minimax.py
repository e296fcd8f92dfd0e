"""The original, saturating minimax GAN (Goodfellow et al. 2014).

D maximises log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z))), whose gradient
vanishes when D confidently rejects fakes (hence the non-saturating variant in ns.py).
"""

from __future__ import annotations

from torch import Tensor

from ganrun.losses.base import AdversarialLoss, mean_softplus


class MinimaxLoss(AdversarialLoss):
    def d_objective(self, real: Tensor, fake: Tensor) -> Tensor:
        # -log(sigmoid(r)) - log(1 - sigmoid(f)) = softplus(-r) + softplus(f)
        return mean_softplus(-real) + mean_softplus(fake)

    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        # log(1 - sigmoid(f)) = -softplus(f)
        return -mean_softplus(fake)

"""The original, saturating minimax GAN (Goodfellow et al. 2014).

D maximises log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z))), whose gradient
vanishes when D confidently rejects fakes (hence the non-saturating variant in ns.py).
"""

from __future__ import annotations

from torch import Tensor

from ganrun.losses.base import AdversarialLoss, mean_softplus
from ganrun.losses.penalties import Penalty


class MinimaxLoss(AdversarialLoss):
    """real_label < 1 is one-sided label smoothing (Salimans et al. 2016): D's target for
    reals becomes real_label (e.g. 0.9); fakes keep the target 0."""

    def __init__(
        self, real_label: float = 1.0, penalties: dict[str, Penalty] | None = None
    ) -> None:
        super().__init__(penalties)
        self.real_label = real_label

    def d_objective(self, real: Tensor, fake: Tensor) -> Tensor:
        # BCE(r, t) + BCE(f, 0) = t softplus(-r) + (1 - t) softplus(r) + softplus(f)
        t = self.real_label
        smoothed = (1.0 - t) * mean_softplus(real) if t != 1.0 else 0.0
        return t * mean_softplus(-real) + smoothed + mean_softplus(fake)

    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        # log(1 - sigmoid(f)) = -softplus(f)
        return -mean_softplus(fake)

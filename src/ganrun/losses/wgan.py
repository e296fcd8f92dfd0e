"""Wasserstein objective (Arjovsky et al. 2017): the critic's mean score gap.

On its own it needs a Lipschitz constraint: the gradient penalty (loss=wgan_gp) adds one.
"""

from __future__ import annotations

from torch import Tensor

from ganrun.losses.base import AdversarialLoss


class WassersteinLoss(AdversarialLoss):
    def d_objective(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -fake.mean()

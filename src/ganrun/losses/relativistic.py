"""Relativistic GANs (Jolicoeur-Martineau 2018): D estimates how much more realistic real data
is than generated data, and G's loss mirrors D's with the roles swapped, so G's step needs
D's logits on a real batch too (`uses_real_in_g`).

Both variants are one function `prefer(a, b)`, the logistic loss of a critic that should
score `a` above `b`: D minimises prefer(real, fake), G minimises prefer(fake, real).
"""

from __future__ import annotations

from torch import Tensor

from ganrun.losses.base import AdversarialLoss, mean_softplus


class RelativisticStandardLoss(AdversarialLoss):
    """RSGAN: D: E[-log sigmoid(r - f)] over pairs; G: E[-log sigmoid(f - r)]."""

    uses_real_in_g = True

    def prefer(self, a: Tensor, b: Tensor) -> Tensor:
        # -log sigmoid(a - b) = softplus(b - a)
        return mean_softplus(b - a)

    def d_objective(self, real: Tensor, fake: Tensor) -> Tensor:
        return self.prefer(real, fake)

    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        if real is None:
            raise ValueError(f"{type(self).__name__}.g_objective needs D's logits on reals")
        return self.prefer(fake, real)


class RelativisticAverageLoss(RelativisticStandardLoss):
    """RaSGAN: each sample is compared with the other side's batch mean, both ways:
    D: E[-log sigmoid(r - mean f)] + E[-log(1 - sigmoid(f - mean r))]; G swaps r and f."""

    def prefer(self, a: Tensor, b: Tensor) -> Tensor:
        # -log sigmoid(a - mean b) + -log(1 - sigmoid(b - mean a))
        return super().prefer(a, b.mean()) + super().prefer(a.mean(), b)

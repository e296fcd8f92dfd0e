"""Least-squares GAN (Mao et al. 2017) with the 0-1 coding: D pulls reals to `real_target`
and fakes to `fake_target`; G pulls fakes to `real_target`."""

from __future__ import annotations

from torch import Tensor

from ganrun.losses.base import AdversarialLoss
from ganrun.losses.penalties import Penalty


class LeastSquaresLoss(AdversarialLoss):
    def __init__(
        self,
        real_target: float = 1.0,
        fake_target: float = 0.0,
        penalties: dict[str, Penalty] | None = None,
    ) -> None:
        super().__init__(penalties)
        self.real_target = real_target
        self.fake_target = fake_target

    def d_objective(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (
            (real - self.real_target).pow(2).mean() + (fake - self.fake_target).pow(2).mean()
        )

    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return 0.5 * (fake - self.real_target).pow(2).mean()

"""Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D is a margin classifier, G raises D's score."""

from __future__ import annotations

import torch
from torch import Tensor

from ganrun.losses.base import AdversarialLoss


class HingeLoss(AdversarialLoss):
    def d_objective(self, real: Tensor, fake: Tensor) -> Tensor:
        return torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()

    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -fake.mean()

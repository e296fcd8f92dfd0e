"""What every objective shares: run D, score the logits, add the configured penalties.

Losses only compute tensors and return logs; the training loop owns backward, the grad
scaler and the optimizers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from ganrun.losses.penalties import Penalty

Logs = dict[str, Tensor]
Aux = Callable[[Tensor], Tensor]  # x -> an extra loss on x (ACGAN's class cross-entropy)


class AdversarialLoss:
    """An objective on discriminator logits plus weighted penalties on D.

    Subclasses implement `d_objective(real_logits, fake_logits)` and
    `g_objective(fake_logits, real_logits)` as batch means; they never see the networks, so the
    math stays testable on plain tensors. `real_logits` reaches `g_objective` only for
    objectives that set `uses_real_in_g` (the relativistic ones); others get None and save
    a forward pass of D.
    """

    uses_real_in_g = False

    def __init__(self, penalties: Mapping[str, Penalty] | None = None) -> None:
        self.penalties = dict(penalties or {})

    def d_objective(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g_objective(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def after_d_step(self, D: nn.Module) -> None:
        """A constraint applied to D after its optimizer step (WGAN's weight clipping)."""

    def d_loss(
        self,
        D: nn.Module,
        real: Tensor,
        fake: Tensor,
        d_step: int = 0,
        aux: Aux | None = None,
        penalty_D: Callable[[Tensor], Tensor] | None = None,
        grad_scale: Tensor | None = None,
        observe: Callable[[Tensor], None] | None = None,
    ) -> tuple[Tensor, Logs]:
        """D's loss on a real batch and a (detached) generated batch.

        `d_step` counts D steps from the start of the run; a penalty with `every=k` (lazy
        regularisation, StyleGAN2) runs on every k-th D step with its weight scaled by k.
        `aux(x)` (ACGAN's class cross-entropy) is added on reals and fakes.
        `penalty_D` is the D the penalties differentiate twice (the eager module when D is
        compiled: torch.compile cannot do double backward); default D. `grad_scale` is the
        fp16 grad scaler's scale for the penalties' inner gradients (None: no scaling).
        `observe` gets the detached real logits (ADA tunes its p on their signs).
        """
        fake = fake.detach()
        real_logits, fake_logits = D(real), D(fake)
        if observe is not None:
            observe(real_logits.detach())
        loss = self.d_objective(real_logits.float(), fake_logits.float())
        logs: Logs = {"d/real": real_logits.detach().mean(), "d/fake": fake_logits.detach().mean()}
        for name, penalty in self.penalties.items():
            if not penalty.due(d_step):
                continue
            value = penalty(D if penalty_D is None else penalty_D, real, fake, grad_scale)
            loss = loss + penalty.weight * penalty.every * value
            logs[name] = value.detach()
        if aux is not None:
            aux_value = aux(real) + aux(fake)
            loss = loss + aux_value
            logs["aux/d"] = aux_value.detach()
        logs["loss/d"] = loss.detach()
        return loss, logs

    def g_loss(
        self, D: nn.Module, fake: Tensor, real: Tensor | None = None, aux: Aux | None = None
    ) -> tuple[Tensor, Logs]:
        """G's loss on a generated batch (gradients flow through D into G)."""
        real_logits = None
        if self.uses_real_in_g and real is not None:
            with torch.no_grad():  # constants for G: its gradient flows through the fakes only
                real_logits = D(real).float()
        loss = self.g_objective(D(fake).float(), real_logits)
        logs: Logs = {}
        if aux is not None:  # ACGAN: G also wants its fakes classified as their labels
            aux_value = aux(fake)
            loss = loss + aux_value
            logs["aux/g"] = aux_value.detach()
        logs["loss/g"] = loss.detach()
        return loss, logs


def mean_softplus(x: Tensor) -> Tensor:
    """mean(log(1 + e^x)), the numerically stable form of -log(sigmoid(-x))."""
    return torch.nn.functional.softplus(x).mean()

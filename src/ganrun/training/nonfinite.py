"""The non-finite guard: a NaN or inf loss or weight never reaches a checkpoint.

Losses are checked on log steps (they are read back then anyway) and every player's weights
before each checkpoint. `trainer.on_nonfinite` says what happens then:

- stop (the default): end the run with a message naming the step, the value and the last
  good checkpoint;
- skip: every optimizer step first checks its gradients (one host sync per phase) and drops
  an update whose gradients are not finite; the count is logged as guard/skipped (a run
  whose weights or BatchNorm statistics still go non-finite stops at its next checkpoint);
- rollback: reload the last good checkpoint (or the run's start) with every learning rate
  halved, at most trainer.max_rollbacks times (train() does the reload).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ganrun.errors import GanrunError
from ganrun.training.state import TrainState

POLICIES = ("stop", "skip", "rollback")


class NonFiniteError(GanrunError):
    """A non-finite loss or weight at `step`; the message names it and the last good checkpoint."""

    def __init__(self, step: int, what: str, value: float, last_good: str | None) -> None:
        good = last_good or "none yet (no checkpoint was written before this step)"
        super().__init__(
            f"{what} is {value} at step {step}: training diverged. The last good checkpoint is "
            f"{good}. Lower the learning rates (optimizer.g.lr / optimizer.d.lr), add a "
            f"penalty or trainer.grad_clip, or set trainer.on_nonfinite=skip or rollback."
        )
        self.step = step


def first_nonfinite(metrics: Mapping[str, float]) -> tuple[str, float] | None:
    """The first logged value that is NaN or infinite, as (key, value)."""
    for key, value in metrics.items():
        if not math.isfinite(value):
            return key, value
    return None


def first_nonfinite_weight(state: TrainState) -> tuple[str, float] | None:
    """(`<player>.<net|ema>.<tensor>`, a bad value) of the first parameter or float buffer
    (BatchNorm statistics) holding a NaN or inf."""
    for name, player in state.players.items():
        for part, module in (("net", player.net), ("ema", player.ema)):
            if module is None:
                continue
            tensors = [*module.named_parameters(), *module.named_buffers()]
            for pname, p in tensors:
                if not p.is_floating_point():
                    continue
                bad = ~torch.isfinite(p.detach())
                if bad.any():
                    return f"{name}.{part}.{pname}", p.detach()[bad].flatten()[0].item()
    return None


def gradients_finite(opt: torch.optim.Optimizer) -> bool:
    """Whether every gradient of the optimizer's parameters is finite (one host sync)."""
    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


class NonFiniteGuard:
    """The loop's checks; `last_good` is the path of the newest checkpoint written."""

    def __init__(self, policy: str = "stop") -> None:
        if policy not in POLICIES:
            raise GanrunError(
                f"trainer.on_nonfinite={policy} is not a policy; use one of {', '.join(POLICIES)}."
            )
        self.policy = policy
        self.last_good: str | None = None

    def check_logs(self, metrics: Mapping[str, float], step: int) -> None:
        """Non-finite logged losses end the step (skip: its updates were already dropped)."""
        if self.policy == "skip":
            return
        bad = first_nonfinite({k: v for k, v in metrics.items() if not k.startswith("perf/")})
        if bad is not None:
            raise NonFiniteError(step, bad[0], bad[1], self.last_good)

    def check_weights(self, state: TrainState, step: int) -> None:
        """Before a checkpoint, under every policy: no NaN or inf weight is ever saved."""
        bad = first_nonfinite_weight(state)
        if bad is not None:
            raise NonFiniteError(step, f"weight {bad[0]}", bad[1], self.last_good)

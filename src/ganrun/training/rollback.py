"""trainer.on_nonfinite=rollback: back to the last good checkpoint with the learning rates
halved, so a run that diverged retries the same stretch more gently."""

from __future__ import annotations

from typing import Any

from ganrun.training.perf import match_optimizer_layout
from ganrun.training.rng import set_rng_state
from ganrun.training.schedules import LearningRate, Schedules
from ganrun.training.state import TrainState

LR_FACTOR = 0.5


def roll_back(state: TrainState, schedules: Schedules, ckpt: dict[str, Any], factor: float) -> None:
    """Load `ckpt` (players, components, step, RNG) into the running state, then scale every
    learning rate, and the base of every scheduled one, by `factor` (LR_FACTOR per rollback
    since that checkpoint was written, so retrying one stretch keeps lowering the rates)."""
    state.load_state_dict(ckpt)
    set_rng_state(ckpt["rng"])
    for player in state.players.values():
        match_optimizer_layout(player.opt)  # a channels_last run's moments keep their layout
        for group in player.opt.param_groups:
            group["lr"] *= factor
    for name, param in schedules.entries.items():
        if isinstance(param, LearningRate):
            schedules.bases[name] *= factor


class Rollbacks:
    """How many rollbacks are left, and the factor the next one applies."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.factor = limit, 0, 1.0

    def saved(self) -> None:
        """A checkpoint was written: it holds the lowered rates, so the factor starts over."""
        self.factor = 1.0

    def take(self) -> float:
        """Count one rollback; returns its factor (a GanrunError's caller re-raises when spent)."""
        self.count += 1
        self.factor *= LR_FACTOR
        return self.factor

    @property
    def spent(self) -> bool:
        return self.count >= self.limit

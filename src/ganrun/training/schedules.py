"""Schedules: a learning rate, Adam's beta2, a penalty weight or the EMA decay as a function
of training progress.

A schedule entry pairs a *parameter* (what it sets: `LearningRate`, `AdamBeta2`,
`PenaltyWeight`, `EmaDecay`) with a *shape* (how the value moves: `Constant`, `LinearDecay`,
`Cosine`). The loop applies every entry before each step and logs the values (`lr/g`, ...).
Shapes are pure functions of (progress, base value), and the base values (what the config
said when the run started) are saved in the checkpoint, so a resumed run continues the same
curve bit for bit.

    ganrun train schedule=linear_decay            # pix2pix/CycleGAN: constant, then linear to 0
    ganrun train schedule=cosine schedule.lr_g.shape.final=1e-5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ganrun.errors import GanrunError

UNITS = ("steps", "images")


@dataclass(frozen=True)
class Progress:
    """Where training is: G steps done and images seen (steps x images per step)."""

    step: int
    images: int
    max_steps: int
    max_images: int

    def position(self, unit: str) -> tuple[int, int]:
        """(done, total) in `unit`."""
        return (self.step, self.max_steps) if unit == "steps" else (self.images, self.max_images)


def _check_unit(unit: str, where: str) -> None:
    if unit not in UNITS:
        raise GanrunError(f"{where}.unit={unit} is not a unit; use one of {', '.join(UNITS)}.")


class Constant:
    """The base value throughout (or `value` when given)."""

    def __init__(self, value: float | None = None) -> None:
        self.value = value

    def __call__(self, progress: Progress, base: float) -> float:
        return base if self.value is None else float(self.value)


class LinearDecay:
    """Constant for `hold`, then linear from the base value to `final` over `length`.

    hold=None: half the run (pix2pix's 100 + 100 epochs); length=None: the rest of the run.
    Counted in steps or in images seen (`unit`).
    """

    def __init__(
        self,
        hold: int | None = None,
        length: int | None = None,
        final: float = 0.0,
        unit: str = "steps",
    ) -> None:
        _check_unit(unit, "schedule.<entry>.shape")
        for key, v in (("hold", hold), ("length", length)):
            if v is not None and v < 0:
                raise GanrunError(f"schedule.<entry>.shape.{key}={v} must be >= 0 (null: auto).")
        self.hold, self.length, self.final, self.unit = hold, length, final, unit

    def __call__(self, progress: Progress, base: float) -> float:
        done, total = progress.position(self.unit)
        hold = total // 2 if self.hold is None else self.hold
        length = max(total - hold, 0) if self.length is None else self.length
        if done < hold:
            return base
        frac = 1.0 if length == 0 else min(1.0, (done - hold) / length)
        return base + (self.final - base) * frac


class Cosine:
    """From `initial` (null: the base value) to `final` along half a cosine over `length`
    (null: the whole run) starting at `start`, then `final` (R3GAN's ramps)."""

    def __init__(
        self,
        final: float,
        initial: float | None = None,
        length: int | None = None,
        start: int = 0,
        unit: str = "steps",
    ) -> None:
        _check_unit(unit, "schedule.<entry>.shape")
        if length is not None and length <= 0:
            raise GanrunError(f"schedule.<entry>.shape.length={length} must be > 0 (null: run).")
        self.final, self.initial, self.length, self.start, self.unit = (
            final,
            initial,
            length,
            start,
            unit,
        )

    def __call__(self, progress: Progress, base: float) -> float:
        done, total = progress.position(self.unit)
        start = base if self.initial is None else float(self.initial)
        length = self.length if self.length is not None else max(total - self.start, 1)
        frac = min(1.0, max(0.0, (done - self.start) / length))
        return self.final + (start - self.final) * 0.5 * (1.0 + math.cos(math.pi * frac))


class Parameter:
    """One scheduled value: reads its base from the built run, writes the current value."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape

    def key(self) -> str:
        """The metrics.jsonl name of the value."""
        raise NotImplementedError

    def read(self, run: Any) -> float:
        """The value as built (before any scheduling): the schedule's base."""
        raise NotImplementedError

    def write(self, run: Any, value: float) -> None:
        raise NotImplementedError


class PlayerParameter(Parameter):
    """A value of one player's optimizer; `player` names it (method=gan: G or D)."""

    prefix = ""  # the log key is <prefix>/<player in lower case>

    def __init__(self, player: str, shape: Any) -> None:
        super().__init__(shape)
        self.player = player

    def key(self) -> str:
        return f"{self.prefix}/{self.player.lower()}"

    def of(self, run: Any) -> Any:
        return self.all_of(run)[0]

    def all_of(self, run: Any) -> list[Any]:
        """The named player; or, for a role with no player of its own name, every player
        named <role>_<x>: G schedules CycleGAN's G_AB and G_BA, D its D_A and D_B (one
        schedule YAML for every method)."""
        players = run.state.players
        if self.player in players:
            return [players[self.player]]
        found = [p for name, p in players.items() if name.startswith(f"{self.player}_")]
        if not found:
            raise GanrunError(
                f"schedule: {self.key()} names player {self.player!r}, but this method's "
                f"players are {', '.join(players)}. Set the entry's player= to one of them."
            )
        return found


class LearningRate(PlayerParameter):
    """Every param group's lr of one player (times its lazy-regularisation ratio)."""

    prefix = "lr"

    def read(self, run: Any) -> float:
        return self.of(run).base_lr()

    def write(self, run: Any, value: float) -> None:
        for p in self.all_of(run):
            for group in p.opt.param_groups:
                group["lr"] = value * p.reg_ratio


class AdamBeta2(PlayerParameter):
    """Adam's beta2 of one player (raised to its lazy-regularisation ratio)."""

    prefix = "beta2"

    def read(self, run: Any) -> float:
        p = self.of(run)
        if "betas" not in p.opt.param_groups[0]:
            raise GanrunError(
                f"schedule: {self.key()} needs an optimizer with betas (Adam); player "
                f"{self.player} uses {type(p.opt).__name__}. Drop the entry or use optimizer=adam."
            )
        return p.opt.param_groups[0]["betas"][1] ** (1.0 / p.reg_ratio)

    def write(self, run: Any, value: float) -> None:
        for p in self.all_of(run):
            for group in p.opt.param_groups:
                group["betas"] = (group["betas"][0], value**p.reg_ratio)


class PenaltyWeight(Parameter):
    """The weight of one named penalty or regulariser of the method's loss (R1's gamma, ...)."""

    def __init__(self, penalty: str, shape: Any) -> None:
        super().__init__(shape)
        self.penalty = penalty

    def key(self) -> str:
        return f"weight/{self.penalty}"

    def _target(self, run: Any) -> Any:
        found = run.method.penalties()
        if self.penalty not in found:
            raise GanrunError(
                f"schedule: {self.key()} names penalty {self.penalty!r}, but this run's "
                f"penalties are {', '.join(found) or 'none'}. Set penalty= to one of them."
            )
        return found[self.penalty]

    def read(self, run: Any) -> float:
        return float(self._target(run).weight)

    def write(self, run: Any, value: float) -> None:
        self._target(run).weight = value


class EmaDecay(Parameter):
    """The EMA decay per step (before the loop's warm-up; replaces trainer.ema_decay)."""

    def key(self) -> str:
        return "ema/decay"

    def read(self, run: Any) -> float:
        return run.ema.decay

    def write(self, run: Any, value: float) -> None:
        run.ema.decay = value


class EmaHalfLife(Parameter):
    """The EMA half-life in thousands of images (trainer.ema_kimg; R3GAN ramps it up from 0).

    0 falls back to the per-step decay (trainer.ema_decay with its warm-up), so a ramp that
    starts at 0 starts as an EMA that follows G closely.
    """

    def key(self) -> str:
        return "ema/kimg"

    def read(self, run: Any) -> float:
        return run.ema.kimg

    def write(self, run: Any, value: float) -> None:
        run.ema.kimg = value


@dataclass
class ScheduledRun:
    """What schedules act on: the state (players), the method (penalties), the EMA."""

    state: Any
    method: Any
    ema: Any


class Schedules:
    """The schedule entries of a run (the `schedule` config node: name -> Parameter)."""

    def __init__(self, entries: Mapping[str, Parameter] | None = None) -> None:
        self.entries = dict(entries or {})
        self.bases: dict[str, float] = {}
        self.run: ScheduledRun | None = None

    def bind(self, run: ScheduledRun) -> None:
        """Attach to a built run; bases are read now unless a checkpoint restored them."""
        self.run = run
        keys = [p.key() for p in self.entries.values()]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise GanrunError(f"schedule: two entries set {', '.join(dup)}; keep one of each.")
        for name, param in self.entries.items():
            if name not in self.bases:
                self.bases[name] = param.read(run)

    def apply(self, progress: Progress) -> dict[str, float]:
        """Set every scheduled value for this point of training; returns them by log key."""
        values = {}
        for name, param in self.entries.items():
            value = float(param.shape(progress, self.bases[name]))
            param.write(self.run, value)
            values[param.key()] = value
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"bases": dict(self.bases)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bases = {k: float(v) for k, v in state.get("bases", {}).items()}

"""fit(): the cadences of training; the method decides what one step does.

    for step in range(state.step, max_steps):
        schedules.apply(progress)            # lr, beta2, penalty weights, EMA decay
        logs = method.step(state, batches, step)
        EMA update of every player that has an EMA copy
        cadences: log (+ eval metrics), sample grid (fixed inputs), checkpoint
        guards: non-finite losses (log steps) and weights (before a checkpoint); a signal
                stops the run here, after saving last.pt

The loop never knows how many networks a method has. Losses are read back from the device
only on log steps, so the hot loop never waits on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganrun.sampling.images import save_samples
from ganrun.tracking.tracker import Tracker
from ganrun.training.distributed import mean_over_ranks
from ganrun.training.ema import EmaRate, update_ema
from ganrun.training.methods.base import Method
from ganrun.training.nonfinite import NonFiniteGuard
from ganrun.training.schedules import Progress, Schedules
from ganrun.training.signals import StopSignals
from ganrun.training.state import TrainState


@dataclass
class LoopConfig:
    max_steps: int
    log_every: int
    sample_every: int
    ckpt_every: int
    eval_every: int = 0  # 0: never evaluate
    sample_truncation: float | None = None  # sample grids' truncation psi; None: off
    sample_truncation_cutoff: int | None = None  # sample grids' truncated layers; None: all


def due(step: int, every: int, last: int) -> bool:
    """True on every `every`-th step and on the final one (every=0: final only)."""
    return step == last or (every > 0 and step % every == 0)


def eval_due(step: int, cfg: LoopConfig) -> bool:
    """Like due() for cfg.eval_every, except that eval_every=0 means never (not final only)."""
    return cfg.eval_every > 0 and due(step, cfg.eval_every, cfg.max_steps)


def learning_rates(state: TrainState) -> dict[str, float]:
    """lr/<player> of every player (first param group, without the lazy-reg correction)."""
    return {f"lr/{name.lower()}": p.base_lr() for name, p in state.players.items()}


def skipped_updates(state: TrainState) -> dict[str, float]:
    """guard/skipped: updates dropped for non-finite gradients (trainer.on_nonfinite=skip)."""
    if not any(p.skip_nonfinite for p in state.players.values()):
        return {}
    return {"guard/skipped": float(sum(p.skipped for p in state.players.values()))}


def update_emas(state: TrainState, beta: float) -> None:
    for player in state.players.values():
        if player.ema is not None:
            update_ema(player.ema, player.net, beta)


def grid_truncation(cfg: LoopConfig) -> dict[str, Any]:
    """trainer.sample_truncation / sample_truncation_cutoff as the sample-grid keywords of
    method.sample, only those set (methods without the truncation trick are called as before)."""
    keys = (
        ("truncation", cfg.sample_truncation),
        ("truncation_cutoff", cfg.sample_truncation_cutoff),
    )
    return {kw: value for kw, value in keys if value is not None}


def fit(
    state: TrainState,
    method: Method,
    batches: Iterator[tuple[Tensor, Tensor | None]],
    cfg: LoopConfig,
    tracker: Tracker,
    samples_dir: Path | None,
    checkpoint: Callable[[bool], None],
    evaluate: Callable[[TrainState], dict[str, float]] | None = None,
    fixed_inputs: Any = None,
    schedules: Schedules | None = None,
    ema: EmaRate | None = None,
    guard: NonFiniteGuard | None = None,
    stop: StopSignals | None = None,
    on_sample: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Train from state.step to cfg.max_steps; returns the last logged metrics.

    `evaluate(state)` (when given) runs on eval_due() steps; its metrics go in that step's
    metrics.jsonl line as eval/<name>. samples_dir=None draws no sample grids (DDP ranks > 0).
    `guard` raises NonFiniteError before a bad value is logged as good or saved; `stop`
    (signals) ends the run with RunInterrupted after the step it arrived in, last.pt saved.
    `on_sample(step)` runs after each sample grid (the run's plots: tracking/run_visuals.py).
    """
    schedules = schedules or Schedules()
    ema = ema or EmaRate()
    guard = guard or NonFiniteGuard()
    per_step = method.images_per_step
    last: dict[str, float] = {}
    tick, tick_step = time.perf_counter(), state.step
    tracker.start(state.step, cfg.max_steps)
    try:
        for step in range(state.step, cfg.max_steps):
            progress = Progress(step, step * per_step, cfg.max_steps, cfg.max_steps * per_step)
            scheduled = schedules.apply(progress)
            logs = method.step(state, batches, step)
            update_emas(state, ema.beta(step, progress.images, per_step))
            state.step = done = step + 1
            tracker.advance(done)

            metrics: dict[str, float] = {}
            if due(done, cfg.log_every, cfg.max_steps):
                logs = mean_over_ranks(logs)  # DDP: the mean over the ranks
                metrics = {k: v.item() for k, v in logs.items()}
                metrics.update({**learning_rates(state), **scheduled, **skipped_updates(state)})
                guard.check_logs(metrics, done)
                now = time.perf_counter()
                rate = (done - tick_step) * method.reals_per_step / max(now - tick, 1e-9)
                metrics["perf/img_per_s"] = rate
                tick, tick_step = now, done
            if evaluate is not None and eval_due(done, cfg):
                metrics.update({f"eval/{k}": float(v) for k, v in evaluate(state).items()})
            if metrics:
                tracker.log(metrics, done)
                last = metrics
            if samples_dir is not None and due(done, cfg.sample_every, cfg.max_steps):
                path = samples_dir / f"{done:07d}.png"
                with torch.no_grad():
                    save_samples(method.sample(state, fixed_inputs, **grid_truncation(cfg)), path)
                tracker.log_image("samples", path, done)
                if on_sample is not None:
                    on_sample(done)
            stopping = stop is not None and stop.requested_anywhere()
            if stopping or due(done, cfg.ckpt_every, cfg.max_steps):
                guard.check_weights(state, done)
                checkpoint(cfg.ckpt_every > 0 and done % cfg.ckpt_every == 0)
            if stopping:
                raise stop.interrupted(done, "checkpoints/last.pt")
    finally:
        tracker.close()
    return last

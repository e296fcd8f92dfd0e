"""fit(): the GAN training loop in the shape papers describe it.

    for step in range(state.step, max_steps):
        for _ in range(n_critic):     d_step(real batch)      # discriminator phase
        g_step()                                              # generator phase
        update_ema(G_ema, G)
        cadences: log, sample grid (fixed noise), checkpoint

Losses are read back from the device only on log steps, so the hot loop never waits on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ganrun.artifacts import save_samples
from ganrun.ema import update_ema
from ganrun.losses.base import AdversarialLoss, Logs
from ganrun.state import TrainState
from ganrun.tracking import Tracker


@dataclass
class LoopConfig:
    max_steps: int
    batch_size: int
    n_critic: int
    ema_decay: float
    log_every: int
    sample_every: int
    ckpt_every: int
    grad_clip: float = 0.0


def due(step: int, every: int, last: int) -> bool:
    """True on every `every`-th step and on the final one (every=0: final only)."""
    return step == last or (every > 0 and step % every == 0)


def optimizer_step(
    loss: Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, clip: float = 0.0
) -> None:
    """backward + step through the grad scaler; clip > 0 caps the global gradient norm first."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip > 0:
        scaler.unscale_(opt)  # clip the true gradients, not the loss-scaled ones
        params = [p for group in opt.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, clip)
    scaler.step(opt)
    scaler.update()


def d_step(
    state: TrainState,
    loss: AdversarialLoss,
    real: Tensor,
    z: Tensor,
    autocast: AbstractContextManager,
    index: int = 0,
    clip: float = 0.0,
) -> Logs:
    """One discriminator update; `index` counts D steps in the run (for lazy penalties)."""
    with autocast:
        with torch.no_grad():
            fake = state.G(z)
        loss_d, logs = loss.d_loss(state.D, real, fake, index)
    optimizer_step(loss_d, state.opt_d, state.scaler_d, clip)
    loss.after_d_step(state.D)
    return logs


def g_step(
    state: TrainState,
    loss: AdversarialLoss,
    z: Tensor,
    autocast: AbstractContextManager,
    real: Tensor | None = None,
    clip: float = 0.0,
) -> Logs:
    """One generator update; `real` (the last D batch) feeds relativistic objectives."""
    state.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    with autocast:
        loss_g, logs = loss.g_loss(state.D, state.G(z), real)
    optimizer_step(loss_g, state.opt_g, state.scaler_g, clip)
    state.D.requires_grad_(True)
    return logs


def fit(
    state: TrainState,
    loss: AdversarialLoss,
    batches: Iterator[tuple[Tensor, Tensor | None]],
    cfg: LoopConfig,
    z_dim: int,
    fixed_z: Tensor,
    autocast: Callable[[], AbstractContextManager],
    tracker: Tracker,
    samples_dir: Path,
    checkpoint: Callable[[bool], None],
) -> dict[str, float]:
    """Train from state.step to cfg.max_steps; returns the last logged metrics."""
    device = fixed_z.device
    B = cfg.batch_size
    last: dict[str, float] = {}
    tick, tick_step = time.perf_counter(), state.step
    tracker.start(state.step, cfg.max_steps)
    try:
        for step in range(state.step, cfg.max_steps):
            for i in range(cfg.n_critic):
                real, _labels = next(batches)
                z = torch.randn(B, z_dim, device=device)
                index = step * cfg.n_critic + i
                d_logs = d_step(state, loss, real, z, autocast(), index, cfg.grad_clip)
            z = torch.randn(B, z_dim, device=device)
            g_logs = g_step(state, loss, z, autocast(), real, cfg.grad_clip)
            update_ema(state.G_ema, state.G, cfg.ema_decay, step)
            state.step = done = step + 1
            tracker.advance(done)

            if due(done, cfg.log_every, cfg.max_steps):
                metrics = {k: v.item() for k, v in {**d_logs, **g_logs}.items()}
                now = time.perf_counter()
                metrics["perf/img_per_s"] = (
                    (done - tick_step) * cfg.n_critic * B / max(now - tick, 1e-9)
                )
                tick, tick_step = now, done
                tracker.log(metrics, done)
                last = metrics
            if due(done, cfg.sample_every, cfg.max_steps):
                path = samples_dir / f"{done:07d}.png"
                with torch.no_grad():
                    save_samples(state.G_ema(fixed_z), path)
                tracker.log_image("samples", path, done)
            if due(done, cfg.ckpt_every, cfg.max_steps):
                checkpoint(cfg.ckpt_every > 0 and done % cfg.ckpt_every == 0)
    finally:
        tracker.close()
    return last

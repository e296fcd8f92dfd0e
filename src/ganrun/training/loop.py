"""fit(): the GAN training loop in the shape papers describe it.

    for step in range(state.step, max_steps):
        for _ in range(n_critic):     d_step(real batch)      # discriminator phase
        g_step()                                              # generator phase
        update_ema(G_ema, G)
        cadences: log (+ eval metrics), sample grid (fixed noise), checkpoint

Losses are read back from the device only on log steps, so the hot loop never waits on it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ganrun.losses.base import AdversarialLoss, Logs
from ganrun.sampling.generate import conditioned
from ganrun.sampling.images import save_samples
from ganrun.tracking.tracker import Tracker
from ganrun.training.amp import loss_scale
from ganrun.training.distributed import local_module, mean_over_ranks
from ganrun.training.ema import update_ema
from ganrun.training.instance_noise import with_instance_noise
from ganrun.training.perf import eager
from ganrun.training.state import TrainState


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
    conditional: bool = False  # feed the batches' class labels to G and D
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs at step 0
    instance_noise_steps: int = 0  # steps over which that std decays linearly to 0 (0: max_steps)
    world_size: int = 1  # processes training together (DDP); perf/img_per_s counts all of them

    def noise_std(self, step: int) -> float:
        if self.instance_noise <= 0:
            return 0.0
        horizon = self.instance_noise_steps or self.max_steps
        return self.instance_noise * max(0.0, 1.0 - step / horizon)

    eval_every: int = 0  # 0: never evaluate


def due(step: int, every: int, last: int) -> bool:
    """True on every `every`-th step and on the final one (every=0: final only)."""
    return step == last or (every > 0 and step % every == 0)


def eval_due(step: int, cfg: LoopConfig) -> bool:
    """Like due() for cfg.eval_every, except that eval_every=0 means never (not final only)."""
    return cfg.eval_every > 0 and due(step, cfg.eval_every, cfg.max_steps)


def eval_metrics(
    evaluate: Callable[[torch.nn.Module], dict[str, float]], G: torch.nn.Module
) -> dict[str, float]:
    """evaluate(G)'s metrics as floats under an `eval/` prefix."""
    return {f"eval/{k}": float(v) for k, v in evaluate(G).items()}


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


def auxiliary(D: torch.nn.Module, labels: Tensor | None) -> Callable[[Tensor], Tensor] | None:
    """D's auxiliary loss with the labels bound (ACGAN's class head), if D has one."""
    aux = getattr(local_module(D), "aux_loss", None)  # DDP does not forward attributes
    return None if aux is None or labels is None else functools.partial(aux, y=labels)


def d_step(
    state: TrainState,
    loss: AdversarialLoss,
    real: Tensor,
    z: Tensor,
    autocast: AbstractContextManager,
    index: int = 0,
    clip: float = 0.0,
    labels: Tensor | None = None,
    noise: float = 0.0,
) -> Logs:
    """One discriminator update; `index` counts D steps in the run (for lazy penalties).

    With class labels (conditional models) the fakes are drawn for the real batch's labels
    and D judges both under them, penalties included. Penalties differentiate the eager D
    (double backward) with the fp16 loss scale (see ganrun.training.amp).
    """
    G, D = conditioned(state.G, labels), with_instance_noise(conditioned(state.D, labels), noise)
    penalty_D = with_instance_noise(conditioned(eager(state.D), labels), noise)
    grad_scale = loss_scale(state.scaler_d, real.device)
    with autocast:
        with torch.no_grad():
            fake = G(z)
        loss_d, logs = loss.d_loss(
            D, real, fake, index, auxiliary(state.D, labels), penalty_D, grad_scale
        )
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
    labels: Tensor | None = None,
    noise: float = 0.0,
) -> Logs:
    """One generator update; `real` (the last D batch) feeds relativistic objectives and
    `labels` (its classes) conditional models."""
    # D's plain module (DDP's wrapper skipped): D is frozen here, so it has no gradients to
    # average; G's gradients flow through D's operations all the same
    plain_D = local_module(state.D)
    G, D = conditioned(state.G, labels), with_instance_noise(conditioned(plain_D, labels), noise)
    state.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    with autocast:
        loss_g, logs = loss.g_loss(D, G(z), real, auxiliary(state.D, labels))
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
    samples_dir: Path | None,
    checkpoint: Callable[[bool], None],
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    fixed_labels: Tensor | None = None,
) -> dict[str, float]:
    """Train from state.step to cfg.max_steps; returns the last logged metrics.

    `evaluate(G_ema)` (when given) runs on eval_due() steps; its metrics go in that step's
    metrics.jsonl line as eval/<name>. samples_dir=None draws no sample grids (DDP ranks > 0).
    """
    device = fixed_z.device
    B = cfg.batch_size
    last: dict[str, float] = {}
    tick, tick_step = time.perf_counter(), state.step
    tracker.start(state.step, cfg.max_steps)
    try:
        for step in range(state.step, cfg.max_steps):
            noise = cfg.noise_std(step)
            for i in range(cfg.n_critic):
                real, labels = next(batches)
                labels = labels if cfg.conditional else None
                z = torch.randn(B, z_dim, device=device)
                index = step * cfg.n_critic + i
                d_logs = d_step(
                    state, loss, real, z, autocast(), index, cfg.grad_clip, labels, noise
                )
            z = torch.randn(B, z_dim, device=device)
            g_logs = g_step(state, loss, z, autocast(), real, cfg.grad_clip, labels, noise)
            update_ema(state.G_ema, state.G, cfg.ema_decay, step)
            state.step = done = step + 1
            tracker.advance(done)

            metrics: dict[str, float] = {}
            if due(done, cfg.log_every, cfg.max_steps):
                logs = mean_over_ranks({**d_logs, **g_logs})  # DDP: the mean over the ranks
                metrics = {k: v.item() for k, v in logs.items()}
                now = time.perf_counter()
                metrics["perf/img_per_s"] = (
                    (done - tick_step) * cfg.n_critic * B * cfg.world_size / max(now - tick, 1e-9)
                )
                tick, tick_step = now, done
            if evaluate is not None and eval_due(done, cfg):
                metrics.update(eval_metrics(evaluate, state.G_ema))
            if metrics:
                tracker.log(metrics, done)
                last = metrics
            if samples_dir is not None and due(done, cfg.sample_every, cfg.max_steps):
                path = samples_dir / f"{done:07d}.png"
                with torch.no_grad():
                    save_samples(conditioned(state.G_ema, fixed_labels)(fixed_z), path)
                tracker.log_image("samples", path, done)
            if due(done, cfg.ckpt_every, cfg.max_steps):
                checkpoint(cfg.ckpt_every > 0 and done % cfg.ckpt_every == 0)
    finally:
        tracker.close()
    return last

"""method=gan: the noise-to-image GAN (Goodfellow et al. 2014 and everything built on it).

One step, as papers write it:

    for _ in range(n_critic):   D step on a real batch and G(z)      (+ D penalties, lazy)
    G step on fresh z                                                (+ G regularisers, lazy)

with class labels for conditional models (the fakes are drawn for the real batch's labels),
ACGAN's auxiliary classifier, relativistic objectives (G's step sees the last real batch),
instance noise on D's inputs, DiffAugment inside D, gradient clipping, AMP, and gradient
accumulation (`trainer.accumulate=k`: each phase sums k micro-batches before its optimizer
step). With `trainer.reuse_fakes` G's step reuses the last D step's fakes and their graph, as
the PyTorch DCGAN example does (one G forward per step instead of two; G's BatchNorm
statistics then move once per step). Players: "G" (with the EMA copy that samples) and "D".
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ganrun.augment.discriminator import real_logit_observer
from ganrun.errors import GanrunError
from ganrun.losses.base import AdversarialLoss, Logs
from ganrun.losses.regularisers import GeneratorRegulariser
from ganrun.sampling.generate import class_labels, conditioned, generate, truncation_options
from ganrun.training.amp import autocast_factory, loss_scale
from ganrun.training.distributed import local_module
from ganrun.training.ema import ema_copy
from ganrun.training.instance_noise import InstanceNoise, with_instance_noise
from ganrun.training.methods.base import Batches, RunSpec
from ganrun.training.methods.steps import apply_gradients, backward, mean_logs, sync_if
from ganrun.training.perf import eager
from ganrun.training.players import Player
from ganrun.training.state import TrainState


@dataclass
class MicroBatch:
    real: Tensor
    labels: Tensor | None  # the real batch's classes (conditional models), else None
    z: Tensor
    fake: Tensor | None = None  # trainer.reuse_fakes: G(z) of the D step, graph kept for G's


def auxiliary(D: nn.Module, labels: Tensor | None) -> Callable[[Tensor], Tensor] | None:
    """D's auxiliary loss with the labels bound (ACGAN's class head), if D has one."""
    aux = getattr(local_module(D), "aux_loss", None)  # DDP does not forward attributes
    return None if aux is None or labels is None else functools.partial(aux, y=labels)


def lazy_ratio(intervals: list[int], player: str) -> float:
    """k/(k+1) for a player regularised every k > 1 steps (StyleGAN2), else 1."""
    lazy = sorted({k for k in intervals if k > 1})
    if len(lazy) > 1:
        raise GanrunError(
            f"method.lazy_regularisation_correction=true: {player}'s penalties run at "
            f"different intervals (every={lazy}); the correction needs one. Give them the same "
            f"every=, or set method.lazy_regularisation_correction=false."
        )
    return lazy[0] / (lazy[0] + 1) if lazy else 1.0


def correct_for_lazy_regularisation(opt: torch.optim.Optimizer, ratio: float) -> None:
    """lr x ratio and every Adam beta ^ ratio (StyleGAN2's mb_ratio), in place."""
    for group in opt.param_groups:
        group["lr"] *= ratio
        if "betas" in group:
            group["betas"] = tuple(b**ratio for b in group["betas"])


def d_step(
    G: Player,
    D: Player,
    loss: AdversarialLoss,
    micro: list[MicroBatch],
    autocast: Callable[[], Any],
    index: int = 0,
    clip: float = 0.0,
    noise: float = 0.0,
    keep_fakes: bool = False,
) -> Logs:
    """One discriminator update over its micro-batches; `index` counts D steps in the run
    (lazy penalties). Penalties differentiate the eager D (double backward) with the fp16
    loss scale (see ganrun.training.amp). keep_fakes: G runs with gradients and each
    micro-batch keeps its fakes for the G step (D's loss sees them detached)."""
    grad_scale = loss_scale(D.scaler, micro[0].real.device)
    observer = real_logit_observer(local_module(D.net))  # ADA: p follows sign(D(real))
    real_logits: list[Tensor] = []
    D.opt.zero_grad(set_to_none=True)
    logs = []
    for i, mb in enumerate(micro):
        gen = conditioned(G.net, mb.labels)
        disc = with_instance_noise(conditioned(D.net, mb.labels), noise)
        penalty_D = with_instance_noise(conditioned(eager(D.net), mb.labels), noise)
        last = i == len(micro) - 1
        g_sync = sync_if(G.net, last) if keep_fakes else contextlib.nullcontext()
        with sync_if(D.net, last), g_sync:
            with autocast():
                with contextlib.nullcontext() if keep_fakes else torch.no_grad():
                    fake = gen(mb.z)
                mb.fake = fake if keep_fakes else None
                loss_d, mb_logs = loss.d_loss(
                    disc,
                    mb.real,
                    fake,
                    index,
                    auxiliary(D.net, mb.labels),
                    penalty_D,
                    grad_scale,
                    None if observer is None else real_logits.append,
                )
            backward(loss_d, D, len(micro))
        logs.append(mb_logs)
    apply_gradients(D, clip)
    loss.after_d_step(D.net)
    if observer is None:
        return mean_logs(logs)
    return {**mean_logs(logs), **observer(torch.cat(real_logits))}


def g_regularisation(
    regularisers: Mapping[str, GeneratorRegulariser],
    G: Callable[[Tensor], Tensor],
    net: nn.Module,
    z: Tensor,
    index: int,
    grad_scale: Tensor | None,
) -> tuple[Tensor | None, Logs]:
    """sum of weight * every * value over the regularisers due on G step `index`."""
    total, logs = None, {}
    for name, reg in regularisers.items():
        if not reg.due(index):
            continue
        value = reg(G, net, z, grad_scale)
        term = reg.weight * reg.every * value
        total = term if total is None else total + term
        logs[name] = value.detach()
    return total, logs


def g_step(
    G: Player,
    D: Player,
    loss: AdversarialLoss,
    micro: list[MicroBatch],
    autocast: Callable[[], Any],
    clip: float = 0.0,
    noise: float = 0.0,
    regularisers: Mapping[str, GeneratorRegulariser] | None = None,
    index: int = 0,
) -> Logs:
    """One generator update over its micro-batches; each micro-batch's `real` (the last D
    step's batch) feeds relativistic objectives and its `labels` conditional models."""
    # D's plain module (DDP's wrapper skipped): D is frozen here, so it has no gradients to
    # average; G's gradients flow through D's operations all the same
    plain_D = local_module(D.net)
    grad_scale = loss_scale(G.scaler, micro[0].z.device) if regularisers else None
    D.net.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    G.opt.zero_grad(set_to_none=True)
    logs = []
    for i, mb in enumerate(micro):
        gen = conditioned(G.net, mb.labels)
        disc = with_instance_noise(conditioned(plain_D, mb.labels), noise)
        with sync_if(G.net, i == len(micro) - 1):
            with autocast():
                fake = gen(mb.z) if mb.fake is None else mb.fake
                mb.fake = None  # the graph is freed with this step
                loss_g, mb_logs = loss.g_loss(disc, fake, mb.real, auxiliary(D.net, mb.labels))
                if regularisers:
                    reg, reg_logs = g_regularisation(
                        regularisers, gen, local_module(G.net), mb.z, index, grad_scale
                    )
                    if reg is not None:
                        loss_g = loss_g + reg
                        mb_logs = {**reg_logs, **mb_logs, "loss/g": loss_g.detach()}
            backward(loss_g, G, len(micro))
        logs.append(mb_logs)
    apply_gradients(G, clip)
    D.net.requires_grad_(True)
    return mean_logs(logs)


class GANMethod:
    """The players G and D, and the step above."""

    def __init__(
        self,
        run: RunSpec,
        g_regularisers: Mapping[str, GeneratorRegulariser] | None = None,
        lazy_regularisation_correction: bool = False,
    ) -> None:
        from ganrun.build import build_loss  # build.py makes the method: import at call time

        cfg, trainer = run.cfg, run.cfg.trainer
        self.run = run
        self.loss = build_loss(cfg)
        self.g_regularisers = dict(g_regularisers or {})
        self.correct_lazy = lazy_regularisation_correction
        self.conditional = bool(cfg.get("conditioning"))
        self.z_dim = cfg.model.z_dim
        self.batch_size = trainer.batch_size
        self.n_critic = trainer.n_critic
        self.accumulate = trainer.get("accumulate", 1)
        if self.accumulate < 1:
            raise GanrunError(
                f"trainer.accumulate={self.accumulate} must be at least 1 (1: no accumulation)."
            )
        self.clip = trainer.grad_clip
        self.reuse_fakes = trainer.get("reuse_fakes", False)
        self.noise = InstanceNoise(
            trainer.instance_noise, trainer.instance_noise_steps, trainer.max_steps
        )
        self.autocast = autocast_factory(run.device, trainer.precision)
        self.batches_per_step = self.n_critic * self.accumulate
        self.images_per_step = self.batch_size * self.accumulate * run.world_size
        self.reals_per_step = self.images_per_step * self.n_critic

    def build_players(self) -> dict[str, Player]:
        """G then D from the config (the caller seeds), each with its optimizer and scaler."""
        from ganrun.build import build_discriminator, build_generator, build_optimizer

        run, cfg = self.run, self.run.cfg
        G = build_generator(cfg.model, run.data_shape, cfg.get("conditioning"), run.num_classes)
        G = G.to(run.device)
        trainer = cfg.trainer  # the sample grids' truncation fails here, not after training
        truncation_options(
            G, trainer.get("sample_truncation"), trainer.get("sample_truncation_cutoff")
        )
        D = build_discriminator(cfg, run.data_shape, run.num_classes).to(run.device)
        fp16 = cfg.trainer.precision == "fp16"
        ratios = {"G": 1.0, "D": 1.0}
        if self.correct_lazy:
            ratios["G"] = lazy_ratio([r.every for r in self.g_regularisers.values()], "G")
            ratios["D"] = lazy_ratio([p.every for p in self.loss.penalties.values()], "D")
        players = {}
        for name, net, ema in (("G", G, ema_copy(G)), ("D", D, None)):
            opt = build_optimizer(cfg, name.lower(), net, run.device)
            correct_for_lazy_regularisation(opt, ratios[name])
            scaler = torch.amp.GradScaler(run.device.type, enabled=fp16)
            players[name] = Player(net, opt, scaler, ema, ratios[name])
        return players

    def penalties(self) -> dict[str, Any]:
        return {**self.loss.penalties, **self.g_regularisers}

    def micro_batches(self, batches: Batches) -> list[MicroBatch]:
        """The next `accumulate` real batches, each with fresh latents."""
        out = []
        for _ in range(self.accumulate):
            real, labels = next(batches)
            z = torch.randn(self.batch_size, self.z_dim, device=real.device)
            out.append(MicroBatch(real, labels if self.conditional else None, z))
        return out

    def step(self, state: TrainState, batches: Batches, step: int) -> Logs:
        G, D = state.players["G"], state.players["D"]
        noise = self.noise.std(step)
        for i in range(self.n_critic):
            micro = self.micro_batches(batches)
            index = step * self.n_critic + i
            keep = self.reuse_fakes and i == self.n_critic - 1  # only the last D step's
            d_logs = d_step(G, D, self.loss, micro, self.autocast, index, self.clip, noise, keep)
        if not self.reuse_fakes:  # G's micro-batches: the last D step's reals, fresh z
            for mb in micro:
                mb.z = torch.randn(self.batch_size, self.z_dim, device=mb.real.device)
        g_logs = g_step(
            G, D, self.loss, micro, self.autocast, self.clip, noise, self.g_regularisers, step
        )
        return {**d_logs, **g_logs}

    def sample_inputs(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        """n fixed latents from `seed` (a generator of their own: the run's RNG is untouched),
        and the classes in turn for a conditional model; on the run's device."""
        z = torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed))
        labels = class_labels(n, self.run.num_classes) if self.conditional else None
        return z.to(self.run.device), None if labels is None else labels.to(self.run.device)

    def sample(
        self,
        state: TrainState,
        inputs: tuple[Tensor, Tensor | None],
        batch_size: int = 1024,
        **truncation: Any,
    ) -> Tensor:
        """The EMA generator on fixed inputs, float32 on the CPU; `truncation` (truncation=,
        truncation_cutoff=: the sample grids' trainer.sample_truncation) goes to generate()."""
        z, labels = inputs
        return generate(state.players["G"].ema, z, batch_size, labels, **truncation)

    def state_dict(self) -> dict[str, Any]:
        return {**self.regulariser_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, reg_state in state.get("g_regularisers", {}).items():
            self.g_regularisers[name].load_state_dict(reg_state)

    def regulariser_state(self) -> dict[str, Any]:
        """{"g_regularisers": name -> state} for the G regularisers with state (path length's
        pl_mean); empty when none has any, so such checkpoints are unchanged."""
        regs = self.g_regularisers.items()
        states = {name: r.state_dict() for name, r in regs if hasattr(r, "state_dict")}
        return {"g_regularisers": states} if states else {}

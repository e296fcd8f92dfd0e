"""method=pix2pix: paired image-to-image translation (Isola et al. 2017).

G (a U-Net) maps a source image a to a target b; a conditional PatchGAN D judges cat(a, b)
against cat(a, G(a)). One step, on one batch of pairs (a, b):

    fake = G(a)                                       (dropout on: pix2pix's noise)
    n_critic x D update on loss.d_loss(D(a, .), b, fake)  (+ D penalties: GP, R1, ...)
    G update on loss.g_loss(D(a, .), fake) + lambda_l1 * mean |fake - b|

Any objective of the `loss` group works (the paper: the non-saturating loss, loss=ns); the
penalties differentiate D with respect to the target image, a held fixed. With n_critic > 1
each D update draws its own batch and G's update uses the last one. Players: "G" and "D";
method.ema=true gives G an EMA copy that then translates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganrun.data.translation import Translate
from ganrun.errors import GanrunError
from ganrun.losses.base import Logs
from ganrun.training.amp import autocast_factory
from ganrun.training.methods.base import Batches, RunSpec
from ganrun.training.methods.steps import apply_gradients, backward
from ganrun.training.methods.translation import (
    build_net,
    check_data,
    check_trainer_for,
    chunked,
    d_update,
    frozen,
    grid,
    make_player,
    on_source,
    source_shape,
    test_inputs,
    translator_of,
)
from ganrun.training.players import Player
from ganrun.training.state import TrainState


def l1_term(fake: Tensor, target: Tensor) -> Tensor:
    """pix2pix's reconstruction term: the mean absolute error over every pixel and channel."""
    return (fake.float() - target.float()).abs().mean()


class Pix2PixMethod:
    def __init__(
        self,
        run: RunSpec,
        generator: Any,
        discriminator: Any,
        lambda_l1: float = 100.0,
        ema: bool = False,
    ) -> None:
        from ganrun.build import build_loss

        check_data(run, "pix2pix", paired=True)
        check_trainer_for(run, "pix2pix")
        if not lambda_l1 >= 0:
            raise GanrunError(
                f"method.lambda_l1={lambda_l1} must be >= 0 (pix2pix: 100; 0: GAN loss only)."
            )
        trainer = run.cfg.trainer
        self.run, self.loss = run, build_loss(run.cfg)
        self.generator, self.discriminator = generator, discriminator
        self.lambda_l1, self.ema = float(lambda_l1), ema
        self.n_critic, self.clip = trainer.n_critic, trainer.grad_clip
        self.autocast = autocast_factory(run.device, trainer.precision)
        self.batches_per_step = self.n_critic
        self.images_per_step = trainer.batch_size * run.world_size
        self.reals_per_step = self.images_per_step * self.n_critic

    def build_players(self) -> dict[str, Player]:
        """G: source channels -> target shape; D: PatchGAN on the summed channels."""
        run = self.run
        shape, source = run.data_shape, source_shape(run)
        G = build_net(self.generator, "method.generator", shape, run.device, source[0])
        joint = (source[0] + shape[0], *shape[1:])
        D = build_net(self.discriminator, "method.discriminator", joint, run.device)
        return {"G": make_player(run, G, "g", self.ema), "D": make_player(run, D, "d", False)}

    def step(self, state: TrainState, batches: Batches, step: int) -> Logs:
        G, D = state.players["G"], state.players["D"]
        for i in range(self.n_critic):
            a, b = next(batches)
            last = i == self.n_critic - 1
            with self.autocast(), torch.enable_grad() if last else torch.no_grad():
                fake = G.net(a)  # the last one keeps its graph for G's update
            index = step * self.n_critic + i
            d_logs = d_update(D, self.loss, b, fake, index, self.autocast, self.clip, on_source(a))
        G.opt.zero_grad(set_to_none=True)
        with frozen(D), self.autocast():
            adv, g_logs = self.loss.g_loss(on_source(a)(D.net), fake, b)
            l1 = l1_term(fake, b)
            total = adv + self.lambda_l1 * l1
        backward(total, G)
        apply_gradients(G, self.clip)
        g_logs = {**g_logs, "loss/g_gan": adv.detach(), "l1": l1.detach(), "loss/g": total.detach()}
        return {**d_logs, **g_logs}

    def penalties(self) -> dict[str, Any]:
        return dict(self.loss.penalties)

    def translator(self, state: TrainState) -> Translate:
        return translator_of(state.players["G"], self.run.device)

    def sample_inputs(self, n: int, seed: int) -> dict[str, Tensor]:
        return test_inputs(self.run, n, seed)

    def sample(
        self, state: TrainState, inputs: dict[str, Tensor], batch_size: int = 1024
    ) -> Tensor:
        """One image: rows of the inputs, G's translations and the targets."""
        fake = chunked(self.translator(state), batch_size, inputs["a"])
        return grid([inputs["a"], fake, inputs["b"]])

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

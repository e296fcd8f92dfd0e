"""method=cyclegan: unpaired translation with cycle consistency (Zhu et al. 2017).

Players: G_AB (A -> B), G_BA (B -> A), D_A (judges domain A: real a against G_BA(b)) and D_B
(real b against G_AB(a)). One step, on a batch a of A and a batch b of B, in the reference
code's order (G first, then the Ds on the same fakes):

    fake_b = G_AB(a), fake_a = G_BA(b)
    G update (both generators, D_A and D_B frozen) on
        loss.g_loss(D_B, fake_b) + loss.g_loss(D_A, fake_a)
      + lambda_cycle * (|G_BA(fake_b) - a| + |G_AB(fake_a) - b|)            (means)
      + lambda_identity * lambda_cycle * (|G_AB(b) - b| + |G_BA(a) - a|)
    D_B update on (b, pool_B(fake_b)), D_A update on (a, pool_A(fake_a))   (+ D penalties)

lambda_identity multiplies lambda_cycle, as in the reference code (its --lambda_identity 0.5
gives an identity weight of 0.5 x 10 = 5). The pools (training/image_pool.py, 50 images per
D) are checkpointed with their random streams, so a resume is exact. Any zoo loss works;
the paper's LSGAN and linear lr decay are conf/method/cyclegan.yaml's defaults.
Note: our lsgan G objective is 1/2 E[(D(G(a)) - 1)^2] (Mao et al.); the reference code's MSE
has no 1/2, so its adversarial term weighs twice ours against the same cycle weight.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganrun.data.base import mixed_seed
from ganrun.data.translation import Translate
from ganrun.errors import GanrunError
from ganrun.losses.base import Logs
from ganrun.training.amp import autocast_factory
from ganrun.training.image_pool import ImagePool
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
    source_shape,
    suffixed,
    test_inputs,
    translator_of,
)
from ganrun.training.players import Player
from ganrun.training.state import TrainState

POOL_STREAMS = {"A": 101, "B": 102}  # mixed_seed index of each pool's random stream


def l1(x: Tensor, y: Tensor) -> Tensor:
    return (x.float() - y.float()).abs().mean()


def cycle_losses(
    a: Tensor, b: Tensor, rec_a: Tensor, rec_b: Tensor, idt_a: Tensor | None, idt_b: Tensor | None
) -> dict[str, Tensor]:
    """The unweighted terms: cycle/a = mean |G_BA(G_AB(a)) - a|, cycle/b likewise;
    identity/a = mean |G_BA(a) - a| and identity/b = mean |G_AB(b) - b| (when computed)."""
    out = {"cycle/a": l1(rec_a, a), "cycle/b": l1(rec_b, b)}
    if idt_a is not None:
        out["identity/a"] = l1(idt_a, a)
        out["identity/b"] = l1(idt_b, b)
    return out


def weighted_cycle(terms: dict[str, Tensor], lambda_cycle: float, lambda_identity: float) -> Tensor:
    """lambda_cycle * (cycle/a + cycle/b) + lambda_identity * lambda_cycle * (identity terms)."""
    total = lambda_cycle * (terms["cycle/a"] + terms["cycle/b"])
    if "identity/a" in terms:
        total = total + lambda_identity * lambda_cycle * (terms["identity/a"] + terms["identity/b"])
    return total


class CycleGANMethod:
    def __init__(
        self,
        run: RunSpec,
        generator: Any,
        discriminator: Any,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        ema: bool = False,
    ) -> None:
        from ganrun.build import build_loss

        check_data(run, "cyclegan", paired=False)
        check_trainer_for(run, "cyclegan", fp16=False)
        trainer = run.cfg.trainer
        if trainer.n_critic != 1:
            raise GanrunError(
                f"trainer.n_critic={trainer.n_critic}: method=cyclegan updates G and each D once "
                f"per step, on the same fakes (the reference schedule). Use trainer.n_critic=1."
            )
        for key, value in (("lambda_cycle", lambda_cycle), ("lambda_identity", lambda_identity)):
            if not value >= 0:
                raise GanrunError(f"method.{key}={value} must be >= 0 (CycleGAN: 10 and 0.5).")
        if lambda_identity > 0 and source_shape(run) != tuple(run.data_shape):
            raise GanrunError(
                f"method.lambda_identity={lambda_identity}: the identity loss feeds B images to "
                f"G_AB, but A images are {source_shape(run)} and B images {tuple(run.data_shape)}. "
                f"Set method.lambda_identity=0 for domains of different shapes."
            )
        self.run, self.loss = run, build_loss(run.cfg)
        self.generator, self.discriminator = generator, discriminator
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        self.ema, self.clip = ema, trainer.grad_clip
        self.pools = {
            name: ImagePool(pool_size, torch.Generator().manual_seed(mixed_seed(run.cfg.seed, k)))
            for name, k in POOL_STREAMS.items()
        }
        self.autocast = autocast_factory(run.device, trainer.precision)
        self.batches_per_step = 1
        self.images_per_step = trainer.batch_size * run.world_size
        self.reals_per_step = 2 * self.images_per_step  # a batch of each domain

    def build_players(self) -> dict[str, Player]:
        run = self.run
        shape_a, shape_b = source_shape(run), tuple(run.data_shape)
        g, d = self.generator, self.discriminator
        G_AB = build_net(g, "method.generator", shape_b, run.device, shape_a[0])
        G_BA = build_net(g, "method.generator", shape_a, run.device, shape_b[0])
        D_A = build_net(d, "method.discriminator", shape_a, run.device)
        D_B = build_net(d, "method.discriminator", shape_b, run.device)
        return {
            "G_AB": make_player(run, G_AB, "g", self.ema),
            "G_BA": make_player(run, G_BA, "g", self.ema),
            "D_A": make_player(run, D_A, "d", False),
            "D_B": make_player(run, D_B, "d", False),
        }

    def step(self, state: TrainState, batches: Batches, step: int) -> Logs:
        p = state.players
        G_AB, G_BA, D_A, D_B = p["G_AB"], p["G_BA"], p["D_A"], p["D_B"]
        a, b = next(batches)
        G_AB.opt.zero_grad(set_to_none=True)
        G_BA.opt.zero_grad(set_to_none=True)
        with frozen(D_A, D_B), self.autocast():
            fake_b, fake_a = G_AB.net(a), G_BA.net(b)
            identity = self.lambda_identity > 0
            terms = cycle_losses(
                a,
                b,
                G_BA.net(fake_b),
                G_AB.net(fake_a),
                G_BA.net(a) if identity else None,
                G_AB.net(b) if identity else None,
            )
            adv_b, logs_b = self.loss.g_loss(D_B.net, fake_b, b)
            adv_a, logs_a = self.loss.g_loss(D_A.net, fake_a, a)
            total = adv_a + adv_b + weighted_cycle(terms, self.lambda_cycle, self.lambda_identity)
        backward(total, G_AB)  # one graph through both generators (scalers off: no fp16)
        apply_gradients(G_AB, self.clip)
        apply_gradients(G_BA, self.clip)
        logs = {**suffixed(logs_a, "a"), **suffixed(logs_b, "b")}
        logs.update({k: v.detach() for k, v in terms.items()})
        logs["loss/g"] = total.detach()
        for name, D, real, fake in (("b", D_B, b, fake_b), ("a", D_A, a, fake_a)):
            seen = self.pools[name.upper()].query(fake)
            logs.update(
                suffixed(d_update(D, self.loss, real, seen, step, self.autocast, self.clip), name)
            )
        logs["loss/d"] = logs["loss/d_a"] + logs["loss/d_b"]
        return logs

    def penalties(self) -> dict[str, Any]:
        return dict(self.loss.penalties)

    def translator(self, state: TrainState, direction: str = "AtoB") -> Translate:
        """A -> B with G_AB (direction=BtoA: B -> A with G_BA), in eval mode."""
        return translator_of(
            state.players["G_AB" if direction == "AtoB" else "G_BA"], self.run.device
        )

    def sample_inputs(self, n: int, seed: int) -> dict[str, Tensor]:
        return test_inputs(self.run, n, seed)

    def sample(
        self, state: TrainState, inputs: dict[str, Tensor], batch_size: int = 1024
    ) -> Tensor:
        """One image: rows of A inputs, G_AB(a), and the cycle G_BA(G_AB(a))."""
        fake = chunked(self.translator(state), batch_size, inputs["a"])
        back = chunked(self.translator(state, "BtoA"), batch_size, fake)
        return grid([inputs["a"], fake, back])

    def state_dict(self) -> dict[str, Any]:
        return {f"pool_{name}": pool.state_dict() for name, pool in self.pools.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, pool in self.pools.items():
            if f"pool_{name}" in state:
                pool.load_state_dict(state[f"pool_{name}"])

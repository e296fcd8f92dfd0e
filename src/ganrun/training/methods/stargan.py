"""method=stargan: one generator for translations between many domains (Choi et al. 2018).

Data: (x, domain) batches (dataset=colored_mnist: colours as domains; any labelled image
dataset works, its classes then being the domains). Players "G" (G(x, c): x moved into
domain c) and "D" (a real/fake map and domain logits on one trunk). One step:

    n_critic x, each on a fresh batch (x, c) with targets c' = c permuted over the batch:
        D update on loss.d_loss(D, x, G(x, c')) + lambda_cls * CE(D_cls(x), c)   (+ penalties)
    G update on the last batch:
        loss.g_loss(D, G(x, c')) + lambda_cls * CE(D_cls(G(x, c')), c')
                                 + lambda_rec * mean |G(G(x, c'), c) - x|

The paper trains it as WGAN-GP (conf/method/stargan.yaml's default loss) with
trainer.n_critic=5; any zoo loss and penalty works here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ganrun.data.translation import Translate
from ganrun.errors import GanrunError
from ganrun.losses.base import Logs
from ganrun.training.amp import autocast_factory
from ganrun.training.distributed import local_module
from ganrun.training.methods.base import Batches, RunSpec
from ganrun.training.methods.steps import apply_gradients, backward
from ganrun.training.methods.translation import (
    build_net,
    check_trainer_for,
    chunked,
    d_update,
    eval_mode,
    frozen,
    grid,
    make_player,
    sampler,
    source_shape,
    test_inputs,
)
from ganrun.training.players import Player
from ganrun.training.state import TrainState


def reconstruction(x: Tensor, rec: Tensor) -> Tensor:
    """mean |G(G(x, c'), c) - x|: the translation back to x's own domain must give x."""
    return (rec.float() - x.float()).abs().mean()


class StarGANMethod:
    def __init__(
        self,
        run: RunSpec,
        generator: Any,
        discriminator: Any,
        lambda_cls: float = 1.0,
        lambda_rec: float = 10.0,
        ema: bool = False,
    ) -> None:
        from ganrun.build import build_loss

        check_trainer_for(run, "stargan")
        if not run.num_classes or run.num_classes < 2:
            raise GanrunError(
                "method=stargan needs domain-labelled data with at least 2 domains "
                f"(this dataset has num_classes={run.num_classes}). Use dataset=colored_mnist, "
                "or a labelled image dataset (its classes become the domains)."
            )
        for key, value in (("lambda_cls", lambda_cls), ("lambda_rec", lambda_rec)):
            if not value >= 0:
                raise GanrunError(f"method.{key}={value} must be >= 0 (StarGAN: 1 and 10).")
        trainer = run.cfg.trainer
        self.run, self.loss = run, build_loss(run.cfg)
        self.generator, self.discriminator = generator, discriminator
        self.domains = int(run.num_classes)
        self.lambda_cls, self.lambda_rec, self.ema = float(lambda_cls), float(lambda_rec), ema
        self.n_critic, self.clip = trainer.n_critic, trainer.grad_clip
        self.autocast = autocast_factory(run.device, trainer.precision)
        self.batches_per_step = self.n_critic
        self.images_per_step = trainer.batch_size * run.world_size
        self.reals_per_step = self.images_per_step * self.n_critic

    def build_players(self) -> dict[str, Player]:
        run, shape = self.run, tuple(self.run.data_shape)
        source, d = source_shape(run)[0], self.domains
        G = build_net(self.generator, "method.generator", shape, run.device, source, num_domains=d)
        D = build_net(self.discriminator, "method.discriminator", shape, run.device, num_domains=d)
        return {"G": make_player(run, G, "g", self.ema), "D": make_player(run, D, "d", False)}

    def step(self, state: TrainState, batches: Batches, step: int) -> Logs:
        G, D = state.players["G"], state.players["D"]
        classify = local_module(D.net).classify
        for i in range(self.n_critic):
            x, c = next(batches)
            target = c[torch.randperm(c.shape[0], device=c.device)]
            last = i == self.n_critic - 1
            with self.autocast(), torch.enable_grad() if last else torch.no_grad():
                fake = G.net(x, target)  # the last one keeps its graph for G's update

            def class_term(x: Tensor = x, c: Tensor = c) -> tuple[Tensor, Logs]:
                value = F.cross_entropy(classify(x).float(), c)
                return self.lambda_cls * value, {"cls/d": value.detach()}

            index = step * self.n_critic + i
            d_logs = d_update(
                D, self.loss, x, fake, index, self.autocast, self.clip, extra=class_term
            )
        G.opt.zero_grad(set_to_none=True)
        with frozen(D), self.autocast():
            adv, g_logs = self.loss.g_loss(D.net, fake, x)
            cls = F.cross_entropy(classify(fake).float(), target)
            rec = reconstruction(x, G.net(fake, c))
            total = adv + self.lambda_cls * cls + self.lambda_rec * rec
        backward(total, G)
        apply_gradients(G, self.clip)
        g_logs = {**g_logs, "loss/g_gan": adv.detach(), "cls/g": cls.detach(), "rec": rec.detach()}
        return {**d_logs, **g_logs, "loss/g": total.detach()}

    def penalties(self) -> dict[str, Any]:
        return dict(self.loss.penalties)

    def translator(self, state: TrainState) -> Translate:
        net = sampler(state.players["G"])

        def translate(a: Tensor, domain: Tensor | None = None) -> Tensor:
            if domain is None:
                raise GanrunError(
                    "method=stargan translates into a chosen domain: pass domain=<index> "
                    f"(0..{self.domains - 1}) to ganrun translate."
                )
            with eval_mode(net):
                return net(a.to(self.run.device), domain.to(self.run.device)).float()

        return translate

    def sample_inputs(self, n: int, seed: int) -> dict[str, Tensor]:
        return test_inputs(self.run, n, seed)

    def sample(
        self, state: TrainState, inputs: dict[str, Tensor], batch_size: int = 1024
    ) -> Tensor:
        """One image: a row of inputs, then a row of their translations into each domain."""
        a, translate = inputs["a"], self.translator(state)
        rows = [a]
        for d in range(self.domains):
            target = torch.full((a.shape[0],), d, dtype=torch.long, device=a.device)
            rows.append(chunked(translate, batch_size, a, target))
        return grid(rows)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

"""What the image-to-image methods (pix2pix, CycleGAN, StarGAN) share: building a network
for a source -> target shape, one D update with any zoo loss and its penalties, translating
in eval mode, and the sample grid of fixed test images (rows: input / output / target).

Their networks are named inside the method YAML (`generator:` / `discriminator:` nodes), not
in the `model` group: a U-Net or a two-headed StarGAN D is no noise-to-image `model=` choice.
The optimizer side (backward, the grad scaler, clipping, the step) is training/methods/steps.py.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from ganrun.data.base import from_uint8
from ganrun.data.translation import Translate
from ganrun.errors import GanrunError
from ganrun.losses.base import AdversarialLoss, Logs
from ganrun.sampling.images import tile, to_uint8
from ganrun.training.amp import loss_scale
from ganrun.training.ema import ema_copy
from ganrun.training.methods.base import RunSpec
from ganrun.training.methods.steps import apply_gradients, backward
from ganrun.training.perf import eager
from ganrun.training.players import Player

Wrap = Callable[[nn.Module], Callable[[Tensor], Tensor]]  # D -> the callable the loss judges


def check_trainer_for(run: RunSpec, name: str, fp16: bool = True) -> None:
    """The trainer keys a translation method does not support, refused with the fix."""
    trainer = run.cfg.trainer
    if trainer.get("accumulate", 1) != 1:
        raise GanrunError(
            f"trainer.accumulate={trainer.accumulate}: method={name} does not accumulate "
            f"gradients. Use trainer.accumulate=1 and a larger trainer.batch_size."
        )
    if not fp16 and trainer.precision == "fp16":
        raise GanrunError(
            f"trainer.precision=fp16: method={name} trains two generators on one loss, which "
            f"one grad scaler per player cannot unscale. Use trainer.precision=bf16 or fp32."
        )


PAIRED = "dataset=edges, colorization, superres, inpainting or paired_folder"
UNPAIRED = "dataset=cifar10_pair, colored_mnist_pair or unpaired_folder"


def check_data(run: RunSpec, name: str, paired: bool) -> None:
    """Translation methods need (a, b) data; pix2pix needs b to be a's ground truth. Checked
    when the dataset is at hand (training), not when rebuilt from a checkpoint."""
    data = run.data
    if data is None:
        return
    if not hasattr(data, "source_shape") or getattr(data, "num_classes", None):
        raise GanrunError(
            f"method={name} translates images and needs translation data ((a, b) batches); "
            f"dataset={type(data).__name__} yields images and labels. Use {PAIRED}"
            + ("." if paired else f", or {UNPAIRED}.")
        )
    if paired and not data.paired:
        raise GanrunError(
            f"method=pix2pix needs paired data (b is a's ground truth), and "
            f"{type(data).__name__} is unpaired. Use {PAIRED}, or method=cyclegan."
        )


def source_shape(run: RunSpec) -> tuple[int, ...]:
    return tuple(run.source_shape or run.data_shape)


def build_net(
    node: DictConfig,
    key: str,
    data_shape: tuple[int, ...],
    device: torch.device,
    in_channels: int | None = None,
    **runtime: Any,
) -> nn.Module:
    """The network of `node` (method.generator, ...): a generator makes data_shape from
    in_channels; a discriminator (in_channels None) reads data_shape. `runtime`: other facts
    of the data (StarGAN: num_domains)."""
    from ganrun.build import make  # build.py makes the method: import at call time

    if in_channels is not None:
        runtime["in_channels"] = in_channels
    return make(node, key, data_shape=tuple(data_shape), **runtime).to(device)


def make_player(run: RunSpec, net: nn.Module, optimizer: str, ema: bool) -> Player:
    """net with optimizer.<optimizer> (g or d), a grad scaler, and an EMA copy when `ema`."""
    from ganrun.build import build_optimizer

    opt = build_optimizer(run.cfg, optimizer, net, run.device)
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.cfg.trainer.precision == "fp16")
    return Player(net, opt, scaler, ema_copy(net) if ema else None)


def on_source(a: Tensor) -> Wrap:
    """A conditional D (pix2pix) judges cat(source, image): D -> (x -> D(cat(a, x)))."""

    def wrap(D: nn.Module) -> Callable[[Tensor], Tensor]:
        return lambda x: D(torch.cat([a.to(x.dtype), x], 1))

    return wrap


def plain(D: nn.Module) -> Callable[[Tensor], Tensor]:
    return D


def d_update(
    D: Player,
    loss: AdversarialLoss,
    real: Tensor,
    fake: Tensor,
    index: int,
    autocast: Callable[[], Any],
    clip: float = 0.0,
    wrap: Wrap = plain,
    extra: Callable[[], tuple[Tensor, Logs]] | None = None,
) -> Logs:
    """One D update: loss.d_loss on (real, fake.detach()) with every configured penalty on
    the eager D (behind the same `wrap`), plus `extra()` (StarGAN's class term)."""
    grad_scale = loss_scale(D.scaler, real.device)
    D.opt.zero_grad(set_to_none=True)
    with autocast():
        value, logs = loss.d_loss(
            wrap(D.net), real, fake, index, None, wrap(eager(D.net)), grad_scale
        )
        if extra is not None:
            term, extra_logs = extra()
            value = value + term
            logs = {**logs, **extra_logs, "loss/d": value.detach()}
    backward(value, D)
    apply_gradients(D, clip)
    loss.after_d_step(D.net)
    return logs


@contextlib.contextmanager
def frozen(*players: Player) -> Iterator[None]:
    """No weight gradients for these players' networks (D during G's update)."""
    for p in players:
        p.net.requires_grad_(False)
    try:
        yield
    finally:
        for p in players:
            p.net.requires_grad_(True)


@contextlib.contextmanager
def eval_mode(*nets: nn.Module) -> Iterator[None]:
    """Dropout off and BatchNorm on its running statistics, restored afterwards: translations
    for grids, evaluation and `ganrun translate` are deterministic."""
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for net, mode in zip(nets, modes):
            net.train(mode)


def sampler(player: Player) -> nn.Module:
    """The network that translates: the EMA copy when the player keeps one."""
    return player.net if player.ema is None else player.ema


def translator_of(player: Player, device: torch.device) -> Translate:
    """x -> the player's sampling network on x (its EMA copy when it has one), in eval mode,
    float32: what eval, translate and the sample grids of pix2pix and CycleGAN call."""
    net = sampler(player)

    def translate(x: Tensor, domain: Tensor | None = None) -> Tensor:
        with eval_mode(net):
            return net(x.to(device)).float()

    return translate


def suffixed(logs: Logs, suffix: str) -> Logs:
    """{'loss/d': x} -> {'loss/d_a': x}: the logs of one of several Ds."""
    return {f"{k}_{suffix}": v for k, v in logs.items()}


def test_inputs(run: RunSpec, n: int, seed: int) -> dict[str, Tensor]:
    """n fixed test items chosen by `seed` (a generator of their own: the run's RNG is
    untouched), on the run's device: "a" (float [-1, 1]), "b" (paired), "a_domains" and
    "b_domains" (domain-labelled test sets). Data without a test set: its real images."""
    if run.data is None:
        raise GanrunError(
            f"method={run.cfg.method._target_.rsplit('.', 1)[-1]}: sample grids show fixed test "
            f"images, and this method was built without its dataset. Build it with "
            f"build_method(..., data=dataset)."
        )
    if not hasattr(run.data, "test_set"):  # a labelled image dataset (StarGAN on digits)
        images = from_uint8(run.data.real_images(n, seed))
        return {"a": images[torch.arange(n) % len(images)].to(run.device)}
    test = run.data.test_set()
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))
    idx = order.repeat(math.ceil(n / len(test)))[:n]
    out = {"a": from_uint8(test.a[idx])}
    if test.paired:
        out["b"] = from_uint8(test.b[idx])
    for key in ("a_domains", "b_domains"):
        if getattr(test, key, None) is not None:
            out[key] = getattr(test, key)[idx]
    return {k: v.to(run.device) for k, v in out.items()}


def grid(rows: list[Tensor], columns: int = 8) -> Tensor:
    """Rows of n images each (grey rows shown as RGB beside colour ones) tiled into one image
    (1, C, H', W') in [-1, 1]: the loop's grid writer saves a single image as it is. More
    than `columns` images wrap into further bands of the same rows (a short last band is
    padded with black), so 64 samples of 256 px stay a readable picture."""
    channels = max(r.shape[1] for r in rows)
    rows = [r.float().cpu().expand(-1, channels, -1, -1) for r in rows]
    n = rows[0].shape[0]
    cols = min(n, columns)
    bands = []
    for start in range(0, n, cols):
        for row in rows:
            part = row[start : start + cols]
            pad = part.new_full((cols - len(part), *part.shape[1:]), -1.0)
            bands.append(torch.cat([part, pad]))
    tiled = tile(to_uint8(torch.cat(bands)), nrow=cols)
    return from_uint8(tiled).unsqueeze(0)


def chunked(fn: Callable[..., Tensor], batch_size: int, *inputs: Tensor | None) -> Tensor:
    """fn over `inputs` in chunks of batch_size (None inputs passed as None), on the CPU."""
    n = next(x for x in inputs if x is not None).shape[0]
    outs = []
    for start in range(0, n, batch_size):
        part = [None if x is None else x[start : start + batch_size] for x in inputs]
        outs.append(fn(*part).float().cpu())
    return torch.cat(outs)

"""Training throughput: ganrun against a plain eager fp32 reference loop, plus a scaling table.

    python scripts/bench_speed.py                        # on the GPU when there is one
    python scripts/bench_speed.py --device cpu --steps 10 --warmup 3
    python scripts/bench_speed.py --quick                # tiny models, a few steps: a smoke run

Models: DCGAN-64 at batch 128 and the SNGAN ResNet at 32 (batch 64), both built from ganrun's
config (model=dcgan / model=resnet, default widths), the same modules in every mode.
Data: synthetic uint8 images (uniform noise), 8 batches' worth, the same array for everyone:
throughput does not depend on pixel values.

Modes:
  reference      the PyTorch DCGAN example's loop written the simplest way: a DataLoader over
                 an in-memory TensorDataset (float32 in [-1, 1], shuffle, workers=--ref-workers),
                 .to(device) per batch, BCE-with-logits, Adam(2e-4, 0.5), fp32 eager, one G
                 forward per iteration reused for D's and G's updates, no EMA. Losses are read
                 back every 50 steps, as ganrun does (the example reads them every step).
  ganrun fp32    ganrun's own loop (build_state, accelerate, loop.fit) with loss=ns, EMA,
  ganrun bf16    the trainer file of the device (trainer=gpu: channels_last, fused Adam, TF32,
  ganrun bf16+compile   cuDNN autotuning; trainer=cpu) and the precision / compile shown.

img/s counts real images through D per second over --steps steps after --warmup steps
(compilation and autotuning happen in the warm-up); ganrun's figure is the
perf/img_per_s it logs itself, the reference's is timed the same way (to its last loss
read-back). Peak memory is torch.cuda.max_memory_allocated per mode (CUDA only).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ganrun.build import (
    build_discriminator,
    build_generator,
    build_state,
    check_trainer,
    resolve_device,
)
from ganrun.config import CONF, register
from ganrun.data.base import InMemoryImages
from ganrun.tracking.tracker import Tracker
from ganrun.training.ema import EmaRate
from ganrun.training.loop import LoopConfig, fit
from ganrun.training.perf import accelerate, restore_backend_flags, set_backend_flags

LOG_EVERY = 50  # steps between loss read-backs, in both loops


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    resolution: int
    batch: int


@dataclass(frozen=True)
class Mode:
    name: str
    precision: str  # fp32 | bf16
    compile: bool


@dataclass
class Result:
    img_per_s: float
    peak_mib: float | None  # CUDA only


CASES = [Case("DCGAN-64", "dcgan", 64, 128), Case("ResNet-32", "resnet", 32, 64)]
MODES = [Mode("ganrun fp32", "fp32", False), Mode("ganrun bf16", "bf16", False)]
COMPILED = Mode("ganrun bf16+compile", "bf16", True)


def compose_cfg(case: Case, device: torch.device, mode: Mode, quick: bool) -> DictConfig:
    """The config a user would get: the device's trainer file plus the benchmark's choices."""
    register()
    overrides = [
        f"model={case.model}",
        "loss=ns",
        f"trainer={'gpu' if device.type == 'cuda' else 'cpu'}",
        f"trainer.device={device.type}",
        f"trainer.precision={mode.precision}",
        f"trainer.compile={str(mode.compile).lower()}",
        f"trainer.batch_size={case.batch}",
        "trainer.n_samples=16",
    ]
    if quick:
        overrides += ["model.generator.width=8", "model.discriminator.width=8"]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def synthetic_images(case: Case, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, case.resolution, case.resolution), generator=gen).to(
        torch.uint8
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, float | None]):
    """Records torch.cuda.max_memory_allocated (MiB) of the block in out["peak"]."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield
    out["peak"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- reference


def reference(
    cfg: DictConfig, images: torch.Tensor, steps: int, warmup: int, workers: int
) -> Result:
    """The PyTorch DCGAN example's training loop (see the module docstring)."""
    device = torch.device(cfg.trainer.device)
    shape = tuple(images.shape[1:])
    memory: dict[str, float | None] = {}
    with peak_memory(device, memory):
        torch.manual_seed(0)
        netG = build_generator(cfg.model, shape).to(device)
        netD = build_discriminator(cfg, shape).to(device)
        dataset = TensorDataset(images.float() / 127.5 - 1.0)
        loader = DataLoader(
            dataset,
            batch_size=cfg.trainer.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
        )
        criterion = nn.BCEWithLogitsLoss()
        optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        batches = itertools.chain.from_iterable(itertools.repeat(loader))
        start = 0.0
        for i, (data,) in enumerate(batches):
            if i == warmup:
                sync(device)
                start = time.perf_counter()
            if i == warmup + steps:
                break
            real = data.to(device)
            b = real.shape[0]
            # (1) D: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            output = netD(real).view(-1)
            errD_real = criterion(output, torch.ones(b, device=device))
            errD_real.backward()
            noise = torch.randn(b, cfg.model.z_dim, device=device)
            fake = netG(noise)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, torch.zeros(b, device=device))
            errD_fake.backward()
            optD.step()
            # (2) G: maximize log(D(G(z)))
            netG.zero_grad()
            output = netD(fake).view(-1)
            errG = criterion(output, torch.ones(b, device=device))
            errG.backward()
            optG.step()
            if (i + 1) % LOG_EVERY == 0 or i + 1 == warmup + steps:
                _ = (errD_real + errD_fake).item(), errG.item()
        elapsed = time.perf_counter() - start
    return Result(steps * cfg.trainer.batch_size / elapsed, memory["peak"])


# ------------------------------------------------------------------------------ ganrun


def ganrun(cfg: DictConfig, images: torch.Tensor, steps: int, warmup: int) -> Result:
    """ganrun's training path: build_state, accelerate (channels_last, compile), loop.fit."""
    trainer = cfg.trainer
    device = resolve_device(trainer.device)
    check_trainer(trainer, device)
    data = InMemoryImages(images, None, None)
    memory: dict[str, float | None] = {}
    flags = set_backend_flags(device, trainer)
    try:
        with peak_memory(device, memory), tempfile.TemporaryDirectory() as tmp:
            state = build_state(cfg, data.shape, device)
            method = state.components["method"]
            batches = data.batches(trainer.batch_size, cfg.seed, 0, device)
            batches = accelerate(state, batches, trainer, data.shape, list(method.penalties()))
            console = Console(file=io.StringIO())
            samples = Path(tmp) / "samples"
            samples.mkdir()
            tracker = Tracker(Path(tmp), console)
            for max_steps in (warmup, warmup + steps):  # the second fit is the timed one
                loop_cfg = LoopConfig(
                    max_steps=max_steps, log_every=LOG_EVERY, sample_every=0, ckpt_every=0
                )
                fit(
                    state,
                    method,
                    batches,
                    loop_cfg,
                    tracker,
                    samples,
                    lambda periodic: None,  # no checkpoints in a benchmark
                    ema=EmaRate(trainer.ema_decay),
                )
    finally:
        restore_backend_flags(flags)
    return Result(timed_throughput(tracker.history, warmup, trainer.batch_size), memory["peak"])


def timed_throughput(history: list[dict[str, float]], warmup: int, batch: int) -> float:
    """Overall img/s after the warm-up, from the perf/img_per_s of each logged interval."""
    images = seconds = 0.0
    previous = warmup
    for row in (r for r in history if r["step"] > warmup):
        n = (row["step"] - previous) * batch
        previous = row["step"]
        images += n
        seconds += n / row["perf/img_per_s"]
    return images / seconds


# ----------------------------------------------------------------------------- report


def ganrun_keys(cfg: DictConfig) -> str:
    """The speed keys ganrun's modes run with (from the device's trainer file)."""
    keys = ("channels_last", "fused_optimizer", "tf32", "cudnn_benchmark")
    return ", ".join(f"{k}={cfg.trainer[k]}" for k in keys)


def fmt_mem(mib: float | None) -> str:
    return "-" if mib is None else f"{mib:,.0f} MiB"


def try_mode(run: Callable[[], Result], name: str) -> Result | None:
    """A mode that cannot run here (e.g. compile without a working backend) is skipped."""
    try:
        return run()
    except Exception as err:  # noqa: BLE001 - report and go on with the other modes
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"  {name}: skipped ({type(err).__name__}: {first[:160]})")
        return None


def throughput(args: argparse.Namespace, device: torch.device) -> None:
    modes = MODES + ([] if args.no_compile else [COMPILED])
    for case in CASES:
        ref_cfg = compose_cfg(case, device, Mode("reference", "fp32", False), args.quick)
        shape = (3, case.resolution, case.resolution)
        G, D = build_generator(ref_cfg.model, shape), build_discriminator(ref_cfg, shape)
        print(
            f"\n{case.name}, batch {case.batch}: G {parameter_count(G):,} + "
            f"D {parameter_count(D):,} parameters, {args.steps} steps after {args.warmup}"
        )
        images = synthetic_images(case, 8 * case.batch)
        ref = reference(ref_cfg, images, args.steps, args.warmup, args.ref_workers)
        print(f"  reference DataLoader: {args.ref_workers} workers; ganrun: {ganrun_keys(ref_cfg)}")
        print(f"  {'mode':<22}{'img/s':>10}{'x ref':>8}{'peak memory':>14}")
        print(
            f"  {'reference (eager fp32)':<22}{ref.img_per_s:>10.1f}{1.0:>8.2f}{fmt_mem(ref.peak_mib):>14}"
        )
        for mode in modes:
            cfg = compose_cfg(case, device, mode, args.quick)
            res = try_mode(
                functools.partial(ganrun, cfg, images, args.steps, args.warmup), mode.name
            )
            if res is not None:
                ratio = res.img_per_s / ref.img_per_s
                print(
                    f"  {mode.name:<22}{res.img_per_s:>10.1f}{ratio:>8.2f}{fmt_mem(res.peak_mib):>14}"
                )


def scaling(args: argparse.Namespace, device: torch.device) -> None:
    """ms per step of ganrun's DCGAN over batch sizes and resolutions."""
    precision = args.scaling_precision or ("bf16" if device.type == "cuda" else "fp32")
    batches = (32, 64) if args.quick else args.scaling_batches
    mode = Mode(f"ganrun {precision}", precision, False)
    print(f"\nScaling: DCGAN, {mode.name}, ms per step (img/s)")
    print(f"  {'resolution':<12}" + "".join(f"{'batch ' + str(b):>20}" for b in batches))
    for resolution in (32, 64):
        cells = []
        for b in batches:
            case = Case("DCGAN", "dcgan", resolution, b)
            cfg = compose_cfg(case, device, mode, args.quick)
            images = synthetic_images(case, 4 * b)
            res = try_mode(
                functools.partial(ganrun, cfg, images, args.scaling_steps, args.warmup),
                f"{resolution}px batch {b}",
            )
            cells.append(
                "-" if res is None else f"{1000 * b / res.img_per_s:.1f} ({res.img_per_s:.0f})"
            )
        print(f"  {resolution:<12}" + "".join(f"{c:>20}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    parser.add_argument("--scaling-steps", type=int, default=None, help="timed steps per cell")
    parser.add_argument("--ref-workers", type=int, default=0, help="reference DataLoader workers")
    parser.add_argument(
        "--scaling-precision", default=None, help="default: bf16 on CUDA, else fp32"
    )
    parser.add_argument(
        "--scaling-batches",
        type=int,
        nargs="+",
        default=[32, 64, 128, 256, 512],
        help="batch sizes",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled mode")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    parser.add_argument("--quick", action="store_true", help="tiny models, 3 steps: a smoke run")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    default_steps, default_warmup = (3, 1) if args.quick else ((200, 30) if cuda else (10, 3))
    args.steps = args.steps or default_steps
    args.warmup = args.warmup if args.warmup is not None else default_warmup
    args.scaling_steps = args.scaling_steps or max(1, args.steps // 2)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"bench_speed: {name}, torch {torch.__version__}, synthetic uint8 data")
    throughput(args, device)
    if not args.no_scaling:
        scaling(args, device)


if __name__ == "__main__":
    main()

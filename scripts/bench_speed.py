"""Training throughput: ganrun against a plain eager fp32 reference loop, plus a scaling table.

    python scripts/bench_speed.py                        # on the GPU when there is one
    python scripts/bench_speed.py --device cpu --steps 10 --warmup 3
    python scripts/bench_speed.py --quick                # tiny models, a few steps: a smoke run
    python scripts/bench_speed.py --peer /path/to/examples/dcgan/main.py   # against the peer
    python scripts/bench_speed.py --stylegan2-peer /tmp/nvlabs   # StyleGAN2 against NVlabs' code
    python scripts/bench_speed.py --startup 5            # start-up of a 1-step run, and the floor

Models: DCGAN-64 at batch 128, and at 32 px (batch 64) the SNGAN ResNet, R3GAN and BigGAN
(unconditional), all built from ganrun's config (model=dcgan / resnet / r3gan / biggan,
default widths), the same modules in every mode.
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

FLOPs and the peak: each model's training step is counted with torch.utils.flop_counter's
FlopCounterMode (matmuls and convolutions, forward and backward; elementwise ops, BatchNorm
and the optimizer are not counted) on the benchmark's own G and D, on a batch of 2, and
divided by 2. The step counted is the DCGAN example's: D on real, G forward, D on the
detached fakes, D's backward; D on the same fakes and the backward through D into G. The
practical peak is a dense fp32 2048x2048 @ 2048x2048 matmul on the benchmark's device with
torch's thread count (TF32 off; best of a few repeats after warm-up), printed once. "% peak"
is img/s x FLOPs per image / peak, for the reference and every ganrun mode alike (the same
FLOPs per image: the useful work of one image). ganrun's own step (method.step) is counted
too and printed as "ganrun's step executes": fresh noise and a second G forward for G's
update (unless trainer.reuse_fakes), but no D weight gradients in G's step.

Peer mode (--peer PATH, PATH being pytorch/examples' dcgan/main.py, run unchanged):
writes --peer-images random 64x64 RGB PNGs (seeded) as an ImageFolder (root/class0/*.png)
in a temp folder, then runs, alternating, --peer-runs times each, the peer
(`--dataset folder --batchSize 64 --workers 2 --manualSeed 0`, --niter epochs enough for
--peer-steps steps) and `python -m ganrun train model=dcgan loss=ns dataset=image_folder`
for the same number of steps (plus --peer-ganrun overrides), each a fresh process in a temp
folder. Whole-process wall time, and in-loop img/s from the end of iteration --peer-warmup
to the end of the last: the peer's from the arrival time of the line it prints per
iteration, ganrun's from the perf/img_per_s rows of its metrics.jsonl (log_every =
--peer-warmup, the first row dropped): the same rule for both. The peak is measured again
after the runs and the higher figure used (a peak taken while something else ran is low).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

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
    overrides: tuple[str, ...] = ()  # more config overrides (StyleGAN2: NVlabs' cifar layout)


@dataclass(frozen=True)
class Mode:
    name: str
    precision: str  # fp32 | bf16
    compile: bool
    trainer: str | None = None  # a conf/trainer file in place of the device's (cpu / gpu)
    extra: tuple[str, ...] = ()  # more overrides


@dataclass
class Result:
    img_per_s: float
    peak_mib: float | None  # CUDA only


# model=stylegan2 as NVlabs' --cfg=cifar builds it (widths 512, their per-GPU batch 32),
# without its regularisers and ADA (loss=ns, like every row)
STYLEGAN2_CIFAR = (
    "model.generator.mapping_layers=2",
    "model.generator.mixing_prob=0.0",
    "model.discriminator.residual=false",
    "model.discriminator.mbstd_group=32",
)
CASES = [
    Case("DCGAN-64", "dcgan", 64, 128),
    Case("ResNet-32", "resnet", 32, 64),
    # the networks of model=r3gan / model=biggan at their default (CIFAR-10) widths,
    # unconditional, trained like every row (loss=ns): architecture cost, not R1/R2's
    Case("R3GAN-32", "r3gan", 32, 64),
    Case("BigGAN-32", "biggan", 32, 64),
    Case("StyleGAN2-32", "stylegan2", 32, 32, STYLEGAN2_CIFAR),
]
MODES = [Mode("ganrun fp32", "fp32", False), Mode("ganrun bf16", "bf16", False)]
CPU_MODES = [  # the CPU speed preset, with and without its GEMM convolutions
    Mode("ganrun fp32 fast", "fp32", False, "fast"),
    Mode("  fast, no GEMM conv", "fp32", False, "fast", ("trainer.gemm_conv_pixels=0",)),
]
COMPILED = Mode("ganrun bf16+compile", "bf16", True)


def compose_cfg(case: Case, device: torch.device, mode: Mode, quick: bool) -> DictConfig:
    """The config a user would get: the device's trainer file plus the benchmark's choices."""
    register()
    overrides = [
        f"model={case.model}",
        "loss=ns",
        f"trainer={mode.trainer or ('gpu' if device.type == 'cuda' else 'cpu')}",
        f"trainer.device={device.type}",
        f"trainer.precision={mode.precision}",
        f"trainer.compile={str(mode.compile).lower()}",
        f"trainer.batch_size={case.batch}",
        "trainer.n_samples=16",
        *case.overrides,
        *mode.extra,
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
                    None,  # no sample grids (sample_every=0 would draw one at the end)
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


# ---------------------------------------------------------------------- FLOPs and the peak


def count_flops(fn: Callable[[], object]) -> int:
    """The FLOPs FlopCounterMode sees while fn runs: matmuls and convolutions (2 per
    multiply-add), forward and backward; elementwise ops, norms and optimizers count 0."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def example_step(G: nn.Module, D: nn.Module, real: torch.Tensor, z_dim: int) -> None:
    """One training step of the DCGAN example (the reference loop), without the optimizer
    updates (FlopCounterMode counts none of Adam's elementwise work): D on real and its
    backward, G forward, D on the detached fakes and its backward (D's step); D on the same
    fakes and the backward through D into G (G's step). BCE on logits, as the reference."""
    criterion = nn.BCEWithLogitsLoss()
    b = real.shape[0]
    ones, zeros = torch.ones(b), torch.zeros(b)
    criterion(D(real).view(-1), ones).backward()
    fake = G(torch.randn(b, z_dim))
    criterion(D(fake.detach()).view(-1), zeros).backward()
    criterion(D(fake).view(-1), ones).backward()


def example_flops_per_image(
    G: nn.Module, D: nn.Module, shape: tuple[int, ...], z_dim: int, batch: int = 2
) -> float:
    """FLOPs of example_step per image: one step on `batch` images (CPU, fp32) / batch."""
    real = torch.randn(batch, *shape)
    return count_flops(lambda: example_step(G, D, real, z_dim)) / batch


def ganrun_flops_per_image(cfg: DictConfig, shape: tuple[int, ...], batch: int = 2) -> float:
    """FLOPs per image of one step of ganrun's method (method.step: its D and G steps as
    configured), built from cfg on the CPU in fp32, eager, on `batch` images."""
    cfg = OmegaConf.merge(
        cfg,
        {
            "trainer": {
                "device": "cpu",
                "precision": "fp32",
                "compile": False,
                "batch_size": batch,
            }
        },
    )
    device = torch.device("cpu")
    images = torch.randint(0, 256, (4 * batch, *shape), dtype=torch.uint8)
    data = InMemoryImages(images, None, None)
    state = build_state(cfg, data.shape, device)
    method = state.components["method"]
    batches = data.batches(batch, cfg.seed, 0, device)
    return count_flops(lambda: method.step(state, batches, 0)) / batch


def matmul_peak(
    device: torch.device, n: int = 2048, repeats: int = 5, warmup: int = 2
) -> tuple[float, int]:
    """(GFLOP/s, calls per repeat) of a dense fp32 n x n @ n x n matmul on `device` with
    torch's current thread count: the best of `repeats` timings after `warmup` untimed
    calls. TF32 is turned off for the measurement (and restored): strict fp32."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    inner = 20 if device.type == "cuda" else 1  # GPU matmuls are short: time a group
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        for _ in range(warmup):
            torch.mm(a, b, out=out)
        sync(device)
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(inner):
                torch.mm(a, b, out=out)
            sync(device)
            best = min(best, (time.perf_counter() - start) / inner)
    finally:
        torch.set_float32_matmul_precision(previous)
    return 2 * n**3 / best / 1e9, inner


def fraction_of_peak(img_per_s: float, flops_per_image: float, peak_gflops: float) -> float:
    """img/s x FLOPs per image / peak (GFLOP/s): the share of the peak the loop does."""
    return img_per_s * flops_per_image / (peak_gflops * 1e9)


def fmt_pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def print_peak(device: torch.device) -> float:
    peak, inner = matmul_peak(device)
    where = "GPU" if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    per = f", {inner} calls per timing" if inner > 1 else ""
    print(
        f"practical peak: {peak:,.0f} GFLOP/s (dense fp32 2048x2048 @ 2048x2048 matmul, "
        f"TF32 off, {where}, best of 5 after 2 warm-up{per})"
    )
    return peak


def load_average() -> str:
    """The 1-minute load average (other processes share the CPU; read the figures with it)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "-"


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


def mode_row(name: str, res: Result, ref: Result, flops: float, peak: float) -> str:
    """One row of the throughput table: img/s, x the reference, % of the peak, memory."""
    ratio = res.img_per_s / ref.img_per_s
    pct = fmt_pct(fraction_of_peak(res.img_per_s, flops, peak))
    return f"  {name:<22}{res.img_per_s:>10.1f}{ratio:>8.2f}{pct:>9}{fmt_mem(res.peak_mib):>14}"


def throughput(args: argparse.Namespace, device: torch.device, peak: float) -> None:
    modes = MODES + (CPU_MODES if device.type == "cpu" else [])
    modes += [] if args.no_compile else [COMPILED]
    known = [c.name for c in CASES]
    unknown = sorted(set(args.cases or []) - set(known))
    if unknown:
        raise SystemExit(f"--cases {' '.join(unknown)}: not a benchmark model; use {known}")
    for case in CASES:
        if args.cases and case.name not in args.cases:
            continue
        ref_cfg = compose_cfg(case, device, Mode("reference", "fp32", False), args.quick)
        shape = (3, case.resolution, case.resolution)
        G, D = build_generator(ref_cfg.model, shape), build_discriminator(ref_cfg, shape)
        print(
            f"\n{case.name}, batch {case.batch}: G {parameter_count(G):,} + "
            f"D {parameter_count(D):,} parameters, {args.steps} steps after {args.warmup}"
        )
        flops = example_flops_per_image(G, D, shape, ref_cfg.model.z_dim)
        own = try_mode(
            functools.partial(ganrun_flops_per_image, ref_cfg, shape), "ganrun's step FLOPs"
        )
        print(
            f"  FLOPs per image: {flops / 1e9:.3f} GFLOP per training step (the example's step: "
            f"D on real + G forward + D on fake, G's step through D, with the backwards)"
            + ("" if own is None else f"; ganrun's step executes {own / 1e9:.3f}")
        )
        images = synthetic_images(case, 8 * case.batch)
        ref = reference(ref_cfg, images, args.steps, args.warmup, args.ref_workers)
        print(f"  reference DataLoader: {args.ref_workers} workers; ganrun: {ganrun_keys(ref_cfg)}")
        print(f"  {'mode':<22}{'img/s':>10}{'x ref':>8}{'% peak':>9}{'peak memory':>14}")

        row = functools.partial(mode_row, ref=ref, flops=flops, peak=peak)
        print(row("reference (eager fp32)", ref))
        for mode in modes:
            cfg = compose_cfg(case, device, mode, args.quick)
            res = try_mode(
                functools.partial(ganrun, cfg, images, args.steps, args.warmup), mode.name
            )
            if res is not None:
                print(row(mode.name, res))
    print(
        "  % peak: img/s x the example step's FLOPs per image / the fp32 matmul peak, for every "
        "row (bf16 rows against the fp32 peak)"
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


# -------------------------------------------------------------------------------- peer

PEER_BATCH = 64
PEER_RESOLUTION = 64
PEER_WORKERS = 2
# the line pytorch/examples' dcgan/main.py prints after every iteration
PEER_LINE = re.compile(r"^\[(\d+)/(\d+)\]\[(\d+)/(\d+)\]\s+Loss_D:")


@dataclass(frozen=True)
class PeerIteration:
    epoch: int
    niter: int
    i: int  # iteration within the epoch
    per_epoch: int  # len(dataloader)


def parse_peer_line(line: str) -> PeerIteration | None:
    """`[epoch/niter][i/len] Loss_D: ...` -> its numbers; any other line -> None."""
    m = PEER_LINE.match(line.strip())
    return None if m is None else PeerIteration(*map(int, m.groups()))


def write_png_folder(root: Path, n: int, resolution: int = 64, seed: int = 0) -> Path:
    """n random RGB PNGs (resolution x resolution, uniform noise from `seed`) in torchvision's
    ImageFolder layout, root/class0/00000.png ...; the same bytes for the same arguments.
    Returns root."""
    folder = root / "class0"
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for k in range(n):
        pixels = torch.randint(0, 256, (resolution, resolution, 3), generator=gen)
        Image.fromarray(pixels.to(torch.uint8).numpy(), "RGB").save(folder / f"{k:05d}.png")
    return root


def peer_plan(steps: int, n_images: int, batch: int = PEER_BATCH) -> tuple[int, int, int]:
    """(niter, iterations per epoch, total iterations): the peer's DataLoader keeps the
    ragged last batch, so an epoch is ceil(n / batch) iterations; niter epochs make at
    least `steps`."""
    per_epoch = math.ceil(n_images / batch)
    niter = math.ceil(steps / per_epoch)
    return niter, per_epoch, niter * per_epoch


def peer_images(it: PeerIteration, n_images: int, batch: int = PEER_BATCH) -> int:
    """Real images in the peer's iteration `it` (the last of an epoch may be short)."""
    return batch if it.i + 1 < it.per_epoch else n_images - batch * (it.per_epoch - 1)


def in_loop_rate(ends: Sequence[float], images: Sequence[int], warmup: int) -> float:
    """img/s from the end of iteration `warmup` to the end of the last one: the images of
    the iterations after the first `warmup` over the time they took. ends[k] is when
    iteration k + 1 ended, images[k] its images."""
    if warmup < 1 or len(ends) <= warmup or len(ends) != len(images):
        raise ValueError(f"need more than warmup={warmup} (>= 1) iterations, got {len(ends)}")
    return sum(images[warmup:]) / (ends[-1] - ends[warmup - 1])


def peer_defaults(source: str) -> dict[str, int | None]:
    """nz, ngf, ndf and imageSize as the peer's argparse defaults them (None if not found)."""
    out: dict[str, int | None] = {}
    for key in ("nz", "ngf", "ndf", "imageSize"):
        m = re.search(rf"""['"]--{key}['"][^)]*?default\s*=\s*(\d+)""", source)
        out[key] = int(m.group(1)) if m else None
    return out


def peer_device_flag(source: str, device: torch.device) -> list[str]:
    """The flag that puts the peer on the GPU (--accel now, --cuda in older copies)."""
    if device.type != "cuda":
        return []
    for flag in ("--accel", "--cuda"):
        if f"'{flag}'" in source or f'"{flag}"' in source:
            return [flag]
    return []


def peer_command(path: Path, root: Path, niter: int, outf: Path, flags: list[str]) -> list[str]:
    """The peer, unchanged (python -u only unbuffers its stdout so lines arrive on time)."""
    return [
        sys.executable,
        "-u",
        str(path),
        "--dataset",
        "folder",
        "--dataroot",
        str(root),
        "--niter",
        str(niter),
        "--batchSize",
        str(PEER_BATCH),
        "--workers",
        str(PEER_WORKERS),
        "--outf",
        str(outf),
        "--manualSeed",
        "0",
        *flags,
    ]


def ganrun_overrides(
    root: Path, steps: int, log_every: int, device: torch.device, extra: Sequence[str]
) -> list[str]:
    """ganrun's side of the comparison: the peer's model, loss, data, batch and workers."""
    return [
        "model=dcgan",
        "loss=ns",
        "dataset=image_folder",
        f"dataset.root={root}",
        f"dataset.resolution={PEER_RESOLUTION}",
        f"dataset.num_workers={PEER_WORKERS}",
        f"trainer.device={device.type}",
        f"trainer.batch_size={PEER_BATCH}",
        f"trainer.max_steps={steps}",
        "trainer.n_critic=1",
        f"trainer.log_every={log_every}",
        *extra,
    ]


@dataclass
class TimedRun:
    wall_s: float
    lines: list[tuple[float, str]]  # (perf_counter when the stdout line arrived, the line)


def run_timed(cmd: Sequence[str], cwd: Path, stderr_path: Path) -> TimedRun:
    """Runs cmd as a fresh process; times it whole and stamps each stdout line on arrival."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter(), line.rstrip("\n")))
        code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        tail = stderr_path.read_text().strip().splitlines()[-15:]
        out_tail = [ln for _, ln in lines[-5:]]
        raise SystemExit(f"{shlex.join(cmd)}\nexited with {code}:\n" + "\n".join(out_tail + tail))
    return TimedRun(wall, lines)


def peer_rate(run: TimedRun, n_images: int, warmup: int) -> tuple[float, int]:
    """(in-loop img/s, iterations seen) from the peer's per-iteration lines."""
    seen = [(t, it) for t, line in run.lines if (it := parse_peer_line(line)) is not None]
    ends = [t for t, _ in seen]
    images = [peer_images(it, n_images) for _, it in seen]
    return in_loop_rate(ends, images, warmup), len(seen)


def metrics_rows(run_dir: Path) -> list[dict[str, float]]:
    """The metrics.jsonl rows of a ganrun run that carry perf/img_per_s."""
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    return [r for r in rows if r.get("perf/img_per_s")]


def compose_overrides(overrides: Sequence[str]) -> DictConfig:
    """The train config `ganrun train` composes from these overrides (hydra.* left out)."""
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[o for o in overrides if not o.startswith("hydra.")])
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def peer_flops(source: str, cfg: DictConfig) -> tuple[list[str], float | None, float]:
    """(lines to print, the peer's FLOPs per image or None, ganrun's): the example's step
    on each side's networks; the peer's are ganrun's DCGAN modules at the peer's widths
    (the same layers: its D's final Sigmoid has no FLOPs)."""
    from ganrun.models.dcgan import DCGANDiscriminator, DCGANGenerator

    shape = (3, PEER_RESOLUTION, PEER_RESOLUTION)
    d = peer_defaults(source)
    G, D = build_generator(cfg.model, shape), build_discriminator(cfg, shape)
    ours = example_flops_per_image(G, D, shape, cfg.model.z_dim)
    ganrun_w = (
        cfg.model.z_dim,
        cfg.model.generator.get("width"),
        cfg.model.discriminator.get("width"),
    )
    is_dcgan = isinstance(G, DCGANGenerator) and isinstance(D, DCGANDiscriminator)
    lines: list[str] = []
    theirs: float | None = None
    if None in (d["nz"], d["ngf"], d["ndf"]):
        lines.append(
            "peer widths: not found in its argparse defaults, so its FLOPs are not attributed"
        )
    else:
        Gp = DCGANGenerator(shape, z_dim=d["nz"], width=d["ngf"])
        Dp = DCGANDiscriminator(shape, width=d["ndf"])
        theirs = example_flops_per_image(Gp, Dp, shape, d["nz"])
        peer_w = (d["nz"], d["ngf"], d["ndf"])
        if is_dcgan and peer_w == ganrun_w:
            lines.append(
                f"architecture: the same on both sides (DCGAN-64, nz={d['nz']}, ngf={d['ngf']}, "
                f"ndf={d['ndf']} = ganrun's z_dim, generator.width, discriminator.width)"
            )
        else:
            lines.append(
                f"architecture DIFFERS: peer nz/ngf/ndf={peer_w}, ganrun z_dim/G width/D width="
                f"{ganrun_w} ({type(G).__name__}/{type(D).__name__}); each side's FLOPs are "
                "its own"
            )
    own = try_mode(lambda: ganrun_flops_per_image(cfg, shape), "ganrun's step FLOPs")
    peer_txt = "-" if theirs is None else f"{theirs / 1e9:.3f}"
    lines.append(
        f"FLOPs per image (the example's step: D on real + G forward + D on fake, G's step "
        f"through D, with the backwards): peer {peer_txt} GFLOP, ganrun {ours / 1e9:.3f} GFLOP"
        + ("" if own is None else f" (ganrun's own step executes {own / 1e9:.3f})")
    )
    return lines, theirs, ours


def pair_ratios(
    peer_runs: list[tuple[float, float]], ganrun_runs: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Run i's (wall s, img/s) on both sides -> per-pair whole-process (peer s / ganrun s) and
    in-loop (ganrun img/s / peer img/s) ratios. Each pair ran back to back, so a drift in the
    machine's speed over the runs hits both sides of a pair alike."""
    whole = [p[0] / g[0] for p, g in zip(peer_runs, ganrun_runs, strict=True)]
    loop = [g[1] / p[1] for p, g in zip(peer_runs, ganrun_runs, strict=True)]
    return whole, loop


def peer_mode(args: argparse.Namespace, device: torch.device, peak: float) -> None:
    path = args.peer.resolve()
    source = path.read_text()
    extra = shlex.split(args.peer_ganrun)
    niter, per_epoch, steps = peer_plan(args.peer_steps, args.peer_images)
    warmup = args.peer_warmup
    flags = peer_device_flag(source, device)
    with tempfile.TemporaryDirectory(prefix="bench_peer_") as tmp_name:
        tmp = Path(tmp_name)
        root = write_png_folder(tmp / "data", args.peer_images, PEER_RESOLUTION, seed=0)
        overrides = ganrun_overrides(root, steps, warmup, device, extra)
        cfg = compose_overrides(overrides)  # fails here, not minutes in, on a bad override
        print(f"\nPeer: {path} (pytorch/examples dcgan/main.py, run unchanged) against ganrun")
        print(
            f"  data: {args.peer_images} random {PEER_RESOLUTION}x{PEER_RESOLUTION} RGB PNGs, "
            f"ImageFolder layout (class0/), seed 0, in a temp folder"
        )
        print(
            f"  both: batch {PEER_BATCH}, {steps} steps (peer: --niter {niter} x {per_epoch} "
            f"iterations), {PEER_WORKERS} DataLoader workers, {device.type}"
            + (f" (peer {' '.join(flags)})" if flags else "")
            + f", a fresh process per run, {args.peer_runs} runs each, alternating"
        )
        print(
            f"  peer:   {shlex.join(peer_command(path, Path('DATA'), niter, Path('OUT'), flags))}"
        )
        shown = ganrun_overrides(Path("DATA"), steps, warmup, device, extra)
        print(f"  ganrun: python -m ganrun train {' '.join(shown)} hydra.run.dir=OUT")
        if device.type == "cuda" and not flags:
            print("  NOTE: the peer has no --accel/--cuda flag: it runs on the CPU")
        lines, fp, fg = peer_flops(source, cfg)
        for line in lines:
            print(f"  {line}")
        print(
            f"  in-loop img/s: the images of iterations {warmup + 1}..{steps} over the time from "
            f"the end of iteration {warmup} to the end of iteration {steps} (the first {warmup} "
            f"are warm-up), for both; peer: when its per-iteration stdout line arrives "
            f"(its window includes what its loop does: the epoch-end checkpoint and DataLoader "
            f"restart, its sample grid at i=0); ganrun: its perf/img_per_s rows in "
            f"metrics.jsonl (log_every {warmup}), the first row dropped"
        )
        load_before = load_average()
        peer_runs: list[tuple[float, float]] = []
        ganrun_runs: list[tuple[float, float]] = []
        for r in range(args.peer_runs):
            outf = tmp / f"peer_{r}"
            run = run_timed(
                peer_command(path, root, niter, outf, flags), tmp, tmp / f"peer_{r}.err"
            )
            rate, seen = peer_rate(run, args.peer_images, warmup)
            if seen != steps:
                raise SystemExit(f"the peer printed {seen} iteration lines, expected {steps}")
            peer_runs.append((run.wall_s, rate))
            run_dir = tmp / f"run_{r}"
            cmd = [sys.executable, "-m", "ganrun", "train", *overrides, f"hydra.run.dir={run_dir}"]
            run = run_timed(cmd, tmp, tmp / f"ganrun_{r}.err")
            ganrun_runs.append(
                (run.wall_s, timed_throughput(metrics_rows(run_dir), warmup, PEER_BATCH))
            )
            print(
                f"    run {r + 1}: peer {peer_runs[-1][0]:.1f} s, {peer_runs[-1][1]:.1f} img/s; "
                f"ganrun {ganrun_runs[-1][0]:.1f} s, {ganrun_runs[-1][1]:.1f} img/s",
                flush=True,
            )
    print(
        f"\n  {'run':<8}{'peer wall s':>13}{'ganrun wall s':>15}{'peer img/s':>12}{'ganrun img/s':>14}"
    )
    for r, ((pw, pr), (gw, gr)) in enumerate(zip(peer_runs, ganrun_runs)):
        print(f"  {r + 1:<8}{pw:>13.1f}{gw:>15.1f}{pr:>12.1f}{gr:>14.1f}")
    pw, gw = (statistics.median(w for w, _ in runs) for runs in (peer_runs, ganrun_runs))
    pr, gr = (statistics.median(x for _, x in runs) for runs in (peer_runs, ganrun_runs))
    print(f"  {'median':<8}{pw:>13.1f}{gw:>15.1f}{pr:>12.1f}{gr:>14.1f}")
    print(
        f"  ganrun/peer: whole-process {pw / gw:.2f}x (peer time / ganrun time), "
        f"in-loop img/s {gr / pr:.2f}x (ganrun / peer)"
    )
    whole, loop = pair_ratios(peer_runs, ganrun_runs)
    print(
        f"  per pair (run i's peer against run i's ganrun): whole-process median "
        f"{statistics.median(whole):.2f}x ({min(whole):.2f}-{max(whole):.2f}), in-loop median "
        f"{statistics.median(loop):.2f}x ({min(loop):.2f}-{max(loop):.2f})"
    )
    again, _ = matmul_peak(device)  # a peak taken while something else ran is too low
    print(
        f"  peak re-measured after the runs: {again:,.0f} GFLOP/s (the higher of the two is "
        f"used); 1-min load average before the runs {load_before}, now {load_average()}"
    )
    peak = max(peak, again)
    print(
        f"  % of the fp32 peak ({peak:,.0f} GFLOP/s), median in-loop img/s x the example "
        f"step's FLOPs per image: peer "
        f"{fmt_pct(None if fp is None else fraction_of_peak(pr, fp, peak))}, ganrun "
        f"{fmt_pct(None if fg is None else fraction_of_peak(gr, fg, peak))}"
    )


# ------------------------------------------------------------------------------ start-up

STARTUP_ARGS = ("train", "debug=smoke", "trainer.max_steps=1")
# what no ganrun change can remove: torch, and the torch._dynamo that torch.optim's first
# Optimizer imports (Optimizer.add_param_group is wrapped in torch._disable_dynamo); exiting
# with gc frozen, as ganrun does
STARTUP_FLOOR = (
    "import gc, torch; torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]); gc.freeze()"
)


def startup_mode(runs: int) -> None:
    """Median wall time of `ganrun train debug=smoke trainer.max_steps=1` (a fresh process
    each, a temp run folder), against `import torch` and torch's first optimizer alone."""
    cmds = {
        "ganrun train debug=smoke trainer.max_steps=1": None,
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "python -c 'import torch; torch.optim.Adam(...); gc.freeze()'": [
            sys.executable,
            "-c",
            STARTUP_FLOOR,
        ],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        for r in range(runs):
            for label, cmd in cmds.items():
                if cmd is None:
                    run_dir = Path(tmp) / f"run_{r}"
                    cmd = [
                        sys.executable,
                        "-m",
                        "ganrun",
                        *STARTUP_ARGS,
                        f"hydra.run.dir={run_dir}",
                    ]
                start = time.perf_counter()
                subprocess.run(cmd, cwd=tmp, check=True, capture_output=True)
                times[label].append(time.perf_counter() - start)
    print(f"\nStart-up, {runs} fresh processes each, alternating (median, min-max s):")
    for label, values in times.items():
        print(
            f"  {label:<58}{statistics.median(values):6.2f}  ({min(values):.2f}-{max(values):.2f})"
        )
    print(f"  1-min load average before {load_before}, after {load_average()}")


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
    parser.add_argument(
        "--cases", nargs="+", default=None, metavar="NAME", help="only these models (DCGAN-64 ...)"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled mode")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    parser.add_argument("--quick", action="store_true", help="tiny models, 3 steps: a smoke run")
    parser.add_argument(
        "--peer",
        type=Path,
        default=None,
        metavar="PATH",
        help="pytorch/examples' dcgan/main.py: run it and ganrun on a PNG folder instead",
    )
    parser.add_argument("--peer-images", type=int, default=1024, help="PNGs in the folder")
    parser.add_argument("--peer-runs", type=int, default=3, help="runs of each, alternating")
    parser.add_argument("--peer-steps", type=int, default=32, help="at least this many steps")
    parser.add_argument(
        "--peer-warmup", type=int, default=4, help="iterations left out of the in-loop img/s"
    )
    parser.add_argument(
        "--peer-ganrun",
        default="",
        metavar="OVERRIDES",
        help='extra ganrun overrides, split on spaces, e.g. "trainer=fast"',
    )
    parser.add_argument(
        "--stylegan2-peer",
        type=Path,
        default=None,
        metavar="DIR",
        help="a stylegan2-ada-pytorch checkout: StyleGAN2 step time against it (stylegan2_peer.py)",
    )
    parser.add_argument("--sg2-width", type=int, default=32, help="StyleGAN2 peer: channel_max")
    parser.add_argument("--sg2-batch", type=int, default=32, help="StyleGAN2 peer: batch size")
    parser.add_argument("--sg2-steps", type=int, default=4, help="StyleGAN2 peer: steps per block")
    parser.add_argument("--sg2-runs", type=int, default=3, help="StyleGAN2 peer: blocks per side")
    parser.add_argument("--sg2-warmup", type=int, default=1, help="StyleGAN2 peer: untimed steps")
    parser.add_argument(
        "--startup",
        type=int,
        default=0,
        metavar="RUNS",
        help="time ganrun train's start-up (a 1-step smoke run) RUNS times, and import torch",
    )
    args = parser.parse_args()
    if args.startup:
        startup_mode(args.startup)
        return
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    default_steps, default_warmup = (3, 1) if args.quick else ((200, 30) if cuda else (10, 3))
    args.steps = args.steps or default_steps
    args.warmup = args.warmup if args.warmup is not None else default_warmup
    args.scaling_steps = args.scaling_steps or max(1, args.steps // 2)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    if args.stylegan2_peer is not None:
        sys.path.insert(0, str(Path(__file__).parent))
        from stylegan2_peer import run as stylegan2_peer

        a = args
        stylegan2_peer(
            a.stylegan2_peer, a.sg2_width, a.sg2_batch, a.sg2_steps, a.sg2_runs, a.sg2_warmup
        )
        return
    if args.peer is not None:
        print(f"bench_speed --peer: {name}, torch {torch.__version__}")
        peer_mode(args, device, print_peak(device))
        return
    print(f"bench_speed: {name}, torch {torch.__version__}, synthetic uint8 data")
    throughput(args, device, print_peak(device))
    if not args.no_scaling:
        scaling(args, device)


if __name__ == "__main__":
    main()

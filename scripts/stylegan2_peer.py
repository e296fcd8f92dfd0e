"""StyleGAN2 step time: ganrun's model=stylegan2 against NVlabs stylegan2-ada-pytorch's own
code on the same config, side by side in one process (`bench_speed.py --stylegan2-peer DIR`).

DIR is a checkout of github.com/NVlabs/stylegan2-ada-pytorch, imported from where it lies
(sys.path), never copied. Off CUDA its upfirdn2d / bias_act / conv2d_gradfix ops take their
reference (plain PyTorch) paths by themselves; they are forced to 'ref' anyway.

The config is NVlabs' `--cfg=cifar` at 32x32 RGB (z = w = 512, mapping depth 2, 'orig' D,
minibatch-std group 32, R1 gamma 0.01 every 16 D steps, no path length, no style mixing, Adam
betas (0, 0.99) with their lazy-regularisation ratios), fp32 with no fp16 layers and no conv
clamp (their CPU path), unconditional, no augmentation, at a reduced width for a CPU
(channel_base and channel_max = --sg2-width x 32 and --sg2-width on both sides: the parameter
counts are printed and must match). One step is what their training loop does per batch:
phases Gmain, Dmain, and Dreg on every 16th step (Greg does nothing without path length),
each with zero_grad, requires_grad toggles, backward, nan_to_num and Adam; ganrun's is
method.step (D step with the lazy R1, then G step). Neither side updates G_ema.

Both sides get the same synthetic uint8 batch stream and step counters, so R1 falls on the
same steps. Blocks of --sg2-steps steps alternate between the two (--sg2-runs each, after
--sg2-warmup untimed steps each); reported: wall and process-CPU ms per step (the CPU figure
is steadier on a shared machine), the median block, the ratio of the medians, and the median
of the per-run ratios (the two adjacent blocks of a run see about the same machine load).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganrun.build import build_state
from ganrun.config import CONF, register
from ganrun.data.base import InMemoryImages

RESOLUTION, Z_DIM, R1_GAMMA, R1_EVERY = 32, 512, 0.01, 16


def ganrun_overrides(width: int, batch: int) -> list[str]:
    """experiment=stylegan2_cifar10 without ADA, at the benchmark's width and batch, fp32."""
    return [
        "experiment=stylegan2_cifar10",
        "~augment",  # no ADA on either side
        "dataset=digits",  # composed only; the data is the benchmark's own tensor
        f"model.generator.width={width}",
        f"model.discriminator.width={width}",
        f"model.generator.channel_base={width * 32}",
        f"model.discriminator.channel_base={width * 32}",
        f"trainer.batch_size={batch}",
        "trainer.device=cpu",
        "trainer.precision=fp32",
    ]


def ganrun_stepper(width: int, batch: int, images: torch.Tensor) -> tuple[Callable, int]:
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=ganrun_overrides(width, batch))
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    data = InMemoryImages(images, None, None)
    state = build_state(cfg, data.shape, torch.device("cpu"))
    method = state.components["method"]
    batches = data.batches(batch, cfg.seed, 0, torch.device("cpu"))
    params = sum(p.numel() for p in state.players["G"].net.parameters())
    params += sum(p.numel() for p in state.players["D"].net.parameters())
    return lambda i: method.step(state, batches, i), params


def nvlabs_stepper(
    peer: Path, width: int, batch: int, images: torch.Tensor
) -> tuple[Callable, int]:
    sys.path.insert(0, str(peer))
    from torch_utils.ops import bias_act, conv2d_gradfix, upfirdn2d  # noqa: F401
    from training.loss import StyleGAN2Loss
    from training.networks import Discriminator, Generator

    conv2d_gradfix.enabled = False  # their reference path (as off CUDA)
    torch.manual_seed(0)
    common = dict(channel_base=width * 32, channel_max=width, num_fp16_res=0, conv_clamp=None)
    G = Generator(
        z_dim=Z_DIM,
        c_dim=0,
        w_dim=Z_DIM,
        img_resolution=RESOLUTION,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=common,
    ).train()
    D = Discriminator(
        c_dim=0,
        img_resolution=RESOLUTION,
        img_channels=3,
        architecture="orig",
        epilogue_kwargs=dict(mbstd_group_size=32),
        **common,
    ).train()
    G.requires_grad_(False)
    D.requires_grad_(False)

    def adam(module: torch.nn.Module, lr: float, interval: int) -> torch.optim.Optimizer:
        ratio = interval / (interval + 1)  # their lazy-regularisation mb_ratio
        return torch.optim.Adam(
            module.parameters(), lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8
        )

    opt_G, opt_D = adam(G, 0.0025, 4), adam(D, 0.0025, R1_EVERY)
    loss = StyleGAN2Loss(
        torch.device("cpu"),
        G.mapping,
        G.synthesis,
        D,
        style_mixing_prob=0.0,
        r1_gamma=R1_GAMMA,
        pl_weight=0.0,
    )
    reals = images.float() / 127.5 - 1.0
    no_c = torch.zeros(batch, 0)

    def phase(name: str, module: torch.nn.Module, opt, real, z, gain: int) -> None:
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        loss.accumulate_gradients(name, real, no_c, z, no_c, sync=True, gain=gain)
        module.requires_grad_(False)
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    def step(i: int) -> None:
        start = (i * batch) % (len(reals) - batch + 1)
        real = reals[start : start + batch]
        phase("Gmain", G, opt_G, real, torch.randn(batch, Z_DIM), 1)
        phase("Dmain", D, opt_D, real, torch.randn(batch, Z_DIM), 1)
        if i % R1_EVERY == 0:
            phase("Dreg", D, opt_D, real, torch.randn(batch, Z_DIM), R1_EVERY)

    params = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    return step, params


def timed_block(step: Callable[[int], None], start: int, n: int) -> tuple[float, float]:
    """(wall ms, process CPU ms) per step; CPU time is the steadier figure on a shared
    machine (time spent waiting for a core does not count)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(start, start + n):
        step(i)
    return (time.perf_counter() - t0) / n * 1000.0, (time.process_time() - c0) / n * 1000.0


def run(peer: Path, width: int, batch: int, steps: int, runs: int, warmup: int) -> dict:
    """Alternating timed blocks of both sides; prints and returns the medians and the ratio."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8 * batch, 3, RESOLUTION, RESOLUTION), generator=gen)
    images = images.to(torch.uint8)
    sides = {
        "ganrun": ganrun_stepper(width, batch, images),
        "NVlabs": nvlabs_stepper(peer, width, batch, images),
    }
    print(
        f"StyleGAN2 cifar config at {RESOLUTION}px, batch {batch}, width {width} "
        f"(channel_base {width * 32}), fp32 CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, (_, params) in sides.items():
        print(f"  {name}: {params:,} parameters (G + D)")
    counters = {name: 0 for name in sides}
    for name, (step, _) in sides.items():
        timed_block(step, 0, warmup)
        counters[name] = warmup
    ms: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for r in range(runs):
        for name in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
            wall, used = timed_block(sides[name][0], counters[name], steps)
            ms[name].append(wall)
            cpu[name].append(used)
            counters[name] += steps
    out = {}
    for label, table in (("wall", ms), ("CPU", cpu)):
        medians = {name: statistics.median(v) for name, v in table.items()}
        for name, values in table.items():
            blocks = ", ".join(f"{v:.0f}" for v in values)
            print(f"  {name:<7} {label} ms/step: median {medians[name]:.0f} (blocks: {blocks})")
        ratio = medians["NVlabs"] / medians["ganrun"]
        # each run's two adjacent blocks saw about the same machine load: their ratio is
        # robust to the load changing between runs
        pairs = [n / g for n, g in zip(table["NVlabs"], table["ganrun"])]
        paired = statistics.median(pairs)
        print(
            f"  NVlabs / ganrun {label} time per step: {ratio:.2f}x of the medians, "
            f"{paired:.2f}x median of the per-run ratios "
            f"({', '.join(f'{p:.2f}' for p in pairs)}) (> 1: ganrun faster)"
        )
        out[label] = {"ms": table, "median": medians, "ratio": ratio, "paired": paired}
    return out

"""Per-layer timing of trainer.gemm_conv_pixels: each convolution of DCGAN-64 (batch 64,
channels_last, fp32, CPU) on torch's kernel and as im2col + one matmul, forward and forward +
backward, and which path trainer=fast picks for it.

    python scripts/bench_gemm_conv.py [--batch 64] [--reps 8]

Prints each layer's weights, forward GFLOP and ms (median of --reps after 2 warm-up calls), with
the machine's dense fp32 matmul rate for scale. Read it for where the lever pays: the layers whose image
is 4x4 (D's 8 -> 4, G's 4 -> 8) and whose weights are many.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ganrun.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganrun.training.gemm_conv import (
    conv2d_gemm,
    conv_transpose2d_gemm,
    gemm_convolutions,
)


def median_ms(fn: Callable[[], object], reps: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def matmul_rate(reps: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / median_ms(lambda: a @ b, reps) / 1e6


def layers(batch: int) -> list[tuple[str, torch.nn.Module, torch.Tensor]]:
    """(name, layer, its input) for every conv of DCGAN-64, inputs from a real forward."""
    torch.manual_seed(0)
    out = []
    for net, x in (
        (DCGANGenerator((3, 64, 64)), torch.randn(batch, 100, 1, 1)),
        (DCGANDiscriminator((3, 64, 64)), torch.randn(batch, 3, 64, 64)),
    ):
        net = net.to(memory_format=torch.channels_last)
        side = "G" if isinstance(net, DCGANGenerator) else "D"
        h = x.contiguous(memory_format=torch.channels_last)
        for module in net.net:
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                out.append((side, module, h.detach()))
            with torch.no_grad():
                h = module(h)
    return out


def time_layer(
    module: torch.nn.Module, x: torch.Tensor, reps: int
) -> tuple[torch.Tensor, float, list[float]]:
    """The layer's output, forward FLOPs, and ms of [torch fwd, torch fwd+bwd, GEMM fwd,
    GEMM fwd+bwd] on input x."""
    transposed = isinstance(module, torch.nn.ConvTranspose2d)
    w = module.weight.detach()
    s, p = module.stride[0], module.padding[0]
    native = functools.partial(F.conv_transpose2d if transposed else F.conv2d, stride=s, padding=p)
    gemm = functools.partial(
        conv_transpose2d_gemm if transposed else conv2d_gemm, stride=s, padding=p
    )
    y = native(x, w)
    flops = 2 * w.numel() * (x[0, 0].numel() if transposed else y[0, 0].numel()) * x.shape[0]
    grad = torch.randn_like(y)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    times = []
    for fn in (native, gemm):
        times.append(median_ms(lambda: fn(x, w, bias=None), reps))  # noqa: B023 - called here
        times.append(median_ms(lambda: fn(xg, wg, bias=None).backward(grad), reps))  # noqa: B023
    return y, flops, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=8)
    args = parser.parse_args()
    print(
        f"CPU, {torch.get_num_threads()} threads, batch {args.batch}, fp32, channels_last; "
        f"dense matmul {matmul_rate(args.reps):.0f} GFLOP/s"
    )
    print(
        f"{'layer':<30}{'weights':>10}{'GFLOP':>7}  {'torch fwd':>10}{'fwd+bwd':>9}"
        f"  {'GEMM fwd':>9}{'fwd+bwd':>9}  {'fast uses':>9}"
    )
    for side, module, x in layers(args.batch):
        y, flops, times = time_layer(module, x, args.reps)
        s, p = module.stride[0], module.padding[0]
        probe = type(module)(module.in_channels, module.out_channels, module.kernel_size, s, p)
        picked = gemm_convolutions(probe, 16) == 1 and probe.uses_gemm(x)
        name = (
            f"{side} {module.in_channels}->{module.out_channels} "
            f"{x.shape[2]}x{x.shape[3]}->{y.shape[2]}x{y.shape[3]}"
        )
        print(
            f"{name:<30}{module.weight.numel():>10,}{flops / 1e9:>7.2f}  {times[0]:>10.1f}"
            f"{times[1]:>9.1f}  {times[2]:>9.1f}{times[3]:>9.1f}  {'GEMM' if picked else 'torch':>9}"
        )
    print("ms, median; fwd+bwd computes the input and weight gradients")


if __name__ == "__main__":
    main()

"""Small-image convolutions as one matrix multiply (im2col + GEMM) on the CPU.

oneDNN's direct convolutions are slow when the image is small and the channels many: a
DCGAN-64 discriminator's 256 -> 512 convolution at 8x8 -> 4x4 runs at about half the speed of
its 128 -> 256 one at 16x16 with the same FLOPs, and so does the generator's 512 -> 256
transposed convolution at 4x4 -> 8x8. Written as patches @ weights, the same sums are one big
matmul, which runs near the machine's matmul peak (scripts/bench_speed.py measures both).

- A convolution gathers each output pixel's k x k x C patch (im2col, in NHWC order so each
  gathered run is C contiguous floats) and multiplies by the weight read as (out, k*k*C).
- A transposed convolution is its adjoint: input pixels @ weight (in, k*k*out), then each
  pixel's k x k block of outputs is added into place (col2im).
- `Im2col` and `Col2im` are each other's adjoint, so their backward passes call each other and
  double backward (R1, gradient penalties) works.

`gemm_convolutions(model, max_pixels)` makes a model's plain `nn.Conv2d` and
`nn.ConvTranspose2d` layers with at least MIN_WEIGHTS weights take this path for calls where
the matmul has at most `max_pixels` rows per image (output pixels of a convolution, input
pixels of a transposed one); smaller layers, other calls, other devices, other dtypes, autocast, groups, dilation and non-zero
padding modes go to torch's own kernel. The layers keep their parameters and state-dict keys,
so checkpoints do not change; results agree with torch's kernels to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

# Each matmul row costs one multiply per weight: below this, torch's kernel is as fast or
# faster (2-core CPU, batch 64: 64 -> 128 at 8x8, 131k weights, 7.1 ms against 8.5 ms forward +
# backward; a 100 -> 256 transposed conv from 1x1, 410k weights, 8.6 against 2.4 ms).
MIN_WEIGHTS = 1 << 18


def _im2col(xp: torch.Tensor, k: int, s: int, ho: int, wo: int) -> torch.Tensor:
    """(n, hp, wp, c) padded NHWC -> (n, ho, wo, k, k, c) patches, one copy."""
    xp = xp.contiguous()
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.stride()
    return xp.as_strided((n, ho, wo, k, k, c), (sn, s * sh, s * sw, sh, sw, sc)).contiguous()


def _col2im(cols: torch.Tensor, k: int, s: int, hp: int, wp: int) -> torch.Tensor:
    """The adjoint of _im2col: (n, ho, wo, k, k, c) -> (n, hp, wp, c), overlaps summed."""
    n, ho, wo, _, _, c = cols.shape
    out = cols.new_zeros((n, hp, wp, c))
    for a in range(k):
        for b in range(k):
            out[:, a : a + s * (ho - 1) + 1 : s, b : b + s * (wo - 1) + 1 : s] += cols[
                :, :, :, a, b
            ]
    return out


class Im2col(Function):
    @staticmethod
    def forward(ctx: Any, xp: torch.Tensor, k: int, s: int, ho: int, wo: int) -> torch.Tensor:
        ctx.geometry = (k, s, xp.shape[1], xp.shape[2])
        return _im2col(xp, k, s, ho, wo)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        k, s, hp, wp = ctx.geometry
        return Col2im.apply(grad, k, s, hp, wp), None, None, None, None


class Col2im(Function):
    @staticmethod
    def forward(ctx: Any, cols: torch.Tensor, k: int, s: int, hp: int, wp: int) -> torch.Tensor:
        ctx.geometry = (k, s, cols.shape[1], cols.shape[2])
        return _col2im(cols, k, s, hp, wp)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        k, s, ho, wo = ctx.geometry
        return Im2col.apply(grad, k, s, ho, wo), None, None, None, None


def _out_size(size: int, k: int, s: int, p: int) -> int:
    """A convolution's output length along one axis."""
    return (size + 2 * p - k) // s + 1


def conv2d_gemm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int
) -> torch.Tensor:
    """F.conv2d(x, weight, bias, stride, padding) for a square kernel, as im2col + one matmul;
    the result is NCHW-shaped in channels_last memory."""
    n, c, h, w = x.shape
    o, _, k, _ = weight.shape
    ho, wo = _out_size(h, k, stride, padding), _out_size(w, k, stride, padding)
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, padding, padding, padding, padding))
    cols = Im2col.apply(xp, k, stride, ho, wo).reshape(n * ho * wo, k * k * c)
    wm = weight.permute(0, 2, 3, 1).reshape(o, k * k * c)  # a view for a channels_last weight
    out = cols @ wm.t() if bias is None else torch.addmm(bias, cols, wm.t())
    return out.view(n, ho, wo, o).permute(0, 3, 1, 2)


def conv_transpose2d_gemm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int
) -> torch.Tensor:
    """F.conv_transpose2d(x, weight, bias, stride, padding) (no output padding) as one matmul
    + col2im; the result is NCHW-shaped in channels_last memory."""
    n, c_in, h, w = x.shape
    _, c_out, k, _ = weight.shape
    xm = x.permute(0, 2, 3, 1).reshape(n * h * w, c_in)
    wm = weight.permute(0, 2, 3, 1).reshape(c_in, k * k * c_out)
    cols = (xm @ wm).view(n, h, w, k, k, c_out)
    hp, wp = stride * (h - 1) + k, stride * (w - 1) + k
    y = Col2im.apply(cols, k, stride, hp, wp)[:, padding : hp - padding, padding : wp - padding]
    if bias is not None:
        y = y + bias
    return y.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def _square(pair: Any) -> int | None:
    """The one value of a square (a, a) kernel / stride / padding, else None."""
    if isinstance(pair, str):  # padding="same" / "valid"
        return None
    a, b = pair
    return a if a == b else None


def _plain_fp32_cpu(module: nn.Module, x: torch.Tensor) -> bool:
    return (
        x.dim() == 4
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and module.groups == 1
        and module.padding_mode == "zeros"
        and tuple(module.dilation) == (1, 1)
        and None
        not in (_square(module.kernel_size), _square(module.stride), _square(module.padding))
    )


class GemmConv2d(nn.Conv2d):
    """nn.Conv2d whose small-output calls run as im2col + matmul (see the module docstring)."""

    gemm_max_pixels: int = 0

    def uses_gemm(self, x: torch.Tensor) -> bool:
        if not _plain_fp32_cpu(self, x):
            return False
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        return _out_size(x.shape[2], k, s, p) * _out_size(x.shape[3], k, s, p) <= (
            self.gemm_max_pixels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uses_gemm(x):
            return conv2d_gemm(x, self.weight, self.bias, self.stride[0], self.padding[0])
        return super().forward(x)


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose small-input calls run as matmul + col2im."""

    gemm_max_pixels: int = 0

    def uses_gemm(self, x: torch.Tensor, output_size: list[int] | None = None) -> bool:
        return (
            output_size is None
            and tuple(self.output_padding) == (0, 0)
            and _plain_fp32_cpu(self, x)
            and x.shape[2] * x.shape[3] <= self.gemm_max_pixels
        )

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.uses_gemm(x, output_size):
            return conv_transpose2d_gemm(x, self.weight, self.bias, self.stride[0], self.padding[0])
        return super().forward(x, output_size)


SWAPS: dict[type, type] = {nn.Conv2d: GemmConv2d, nn.ConvTranspose2d: GemmConvTranspose2d}


def gemm_convolutions(model: nn.Module, max_pixels: int) -> int:
    """Give the model's plain Conv2d / ConvTranspose2d layers with at least MIN_WEIGHTS weights
    the GEMM path for calls of at most `max_pixels` matmul rows per image; returns how many
    layers have it. Only exact nn.Conv2d / nn.ConvTranspose2d instances change class (not
    subclasses, nor layers with a parametrization such as spectral norm); parameters, buffers
    and hooks stay as they are. max_pixels <= 0 changes nothing."""
    if max_pixels <= 0:
        return 0
    swapped = 0
    for module in model.modules():
        target = SWAPS.get(type(module))
        if target is not None and module.weight.numel() >= MIN_WEIGHTS:
            module.__class__ = target
        if isinstance(module, (GemmConv2d, GemmConvTranspose2d)):
            module.gemm_max_pixels = max_pixels
            swapped += 1
    return swapped

"""FIR up- and down-sampling by 2 in plain PyTorch (pad + depthwise conv), no custom ops.

A separable low-pass filter is applied around the rate change so resampling does not alias
(Zhang 2019; StyleGAN2 and R3GAN resample this way). taps (1, 3, 3, 1) is bilinear
interpolation; (1, 2, 1) is R3GAN's filter. Everything is differentiable twice (R1/R2 take
gradients through it), works under channels_last, autocast and torch.compile.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def fir_kernel(taps: Sequence[float], gain: float = 1.0) -> Tensor:
    """The 2-D outer product of `taps`, normalised to sum to `gain`."""
    t = torch.as_tensor(taps, dtype=torch.float32)
    # the sum is checked on the Python numbers: a tensor .item() here is a data-dependent
    # branch that torch.export (ganrun export format=onnx) cannot trace
    if t.dim() != 1 or t.numel() < 1 or sum(float(v) for v in taps) == 0:
        raise ValueError(f"FIR taps {list(taps)} must be a non-empty 1-D list with non-zero sum")
    k = torch.outer(t, t)
    return k * (gain / k.sum())


def _filter(x: Tensor, kernel: Tensor, pad: tuple[int, int], stride: int) -> Tensor:
    """Zero-pad by pad=(before, after) on both spatial axes, then the depthwise FIR conv."""
    c = x.shape[1]
    weight = kernel.to(x.dtype).to(x.device).expand(c, 1, *kernel.shape)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, weight, stride=stride, groups=c)


def upsample2d(x: Tensor, taps: Sequence[float] = (1, 3, 3, 1)) -> Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W): zeros between the pixels, then the filter with gain 4
    (so a constant image stays constant)."""
    b, c, h, w = x.shape
    stuffed = F.pad(x.reshape(b, c, h, 1, w, 1), (0, 1, 0, 0, 0, 1)).reshape(b, c, 2 * h, 2 * w)
    k = len(taps)
    return _filter(stuffed, fir_kernel(taps, gain=4.0), (k // 2, (k - 1) // 2), stride=1)


def downsample2d(x: Tensor, taps: Sequence[float] = (1, 3, 3, 1)) -> Tensor:
    """(B, C, H, W) -> (B, C, H/2, W/2): the filter (gain 1), then every second pixel."""
    k = len(taps)
    return _filter(x, fir_kernel(taps), ((k - 1) // 2, (k - 2) // 2), stride=2)

"""StyleGAN2's building blocks in plain PyTorch: FIR resampling and equalized-lr layers.

NVlabs ship these as custom CUDA ops (upfirdn2d, bias_act) that often fail to build; here
they are conv2d / conv_transpose2d calls, so they run on any device, under torch.compile,
and support double backward (R1, path length) with no plugin.

FIR resampling: upsampling inserts zeros and low-passes with the separable [1, 3, 3, 1]
filter (gain 4, so a constant image stays constant); downsampling low-passes, then keeps every
second pixel. Both are one depthwise (transposed) convolution.

Equalized learning rate (Karras et al. 2018): weights are stored N(0, 1) / lr_mul and scaled
by lr_mul / sqrt(fan_in) at run time, so Adam's per-parameter step size is the same for every
layer whatever its fan-in (and lr_mul slows a layer down: 0.01 in the mapping network).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps activations' second moment through leaky ReLU (He init)
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def fir_kernel(taps: tuple[float, ...] = FIR_TAPS) -> Tensor:
    """The 2-D separable filter outer(taps, taps), normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


def _depthwise(kernel: Tensor, x: Tensor) -> Tensor:
    """kernel (k, k) as a depthwise weight (C, 1, k, k) in x's dtype and device."""
    return kernel.to(x.dtype).expand(x.shape[1], 1, *kernel.shape)


def blur(x: Tensor, kernel: Tensor, pad: tuple[int, int]) -> Tensor:
    """x filtered with `kernel` per channel, padded by (before, after) zeros on each spatial
    side (the kernel is symmetric, so correlation equals convolution)."""
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, _depthwise(kernel, x), groups=x.shape[1])


def upsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W): zero insertion then the FIR filter with gain 4.

    One transposed convolution with stride 2; for the 4-tap filter, padding 1 centres it
    (upfirdn2d's up=2 with padding (2, 1)).
    """
    k = kernel.shape[-1]
    weight = _depthwise(kernel * 4, x)
    return F.conv_transpose2d(x, weight, stride=2, padding=(k - 1) // 2, groups=x.shape[1])


def downsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, H/2, W/2): the FIR filter, then every second pixel (one strided
    depthwise convolution; padding 1 for the 4-tap filter)."""
    k = kernel.shape[-1]
    return F.conv2d(x, _depthwise(kernel, x), stride=2, padding=(k - 2) // 2, groups=x.shape[1])


def lrelu(x: Tensor, gain: float = 1.0) -> Tensor:
    """Leaky ReLU (0.2) times sqrt(2) * gain (NVlabs' bias_act 'lrelu')."""
    return F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN * gain)


class EqualLinear(nn.Module):
    """y = x W^T (lr_mul / sqrt(in)) + b lr_mul, optionally leaky ReLU with gain sqrt(2)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        x = F.linear(x, w, self.bias.to(x.dtype) * self.lr_mul)
        return lrelu(x) if self.activation else x


class EqualConv2d(nn.Module):
    """A k x k convolution with equalized lr, optional FIR downsampling by 2, bias and leaky
    ReLU; forward's `gain` scales the output (sqrt(0.5) on D's residual branches).

    Downsampling follows NVlabs' order: blur (padded so that the strided conv lands centred),
    then the convolution with stride 2.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: bool = True,
        down: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.activation = activation
        self.down = down
        self.padding = kernel_size // 2
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype)
        if self.down and w.shape[-1] == 1:
            x = F.conv2d(downsample2d(x, self.kernel), w, b)
        elif self.down:
            k = self.kernel.shape[-1]
            pad = self.padding + (k - 1) // 2, self.padding + (k - 2) // 2
            x = F.conv2d(blur(x, self.kernel, pad), w, b, stride=2)
        else:
            x = F.conv2d(x, w, b, padding=self.padding)
        return lrelu(x, gain) if self.activation else x * gain

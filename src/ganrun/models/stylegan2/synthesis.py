"""StyleGAN2's synthesis network: per-layer styles from w modulate 3x3 convolutions.

Each layer scales its input channels by a style (an affine map of w, initialised to 1), runs
one shared convolution and demodulates: each output channel is divided by the norm its
per-sample modulated weights would have, which removes the droplet artefacts of AdaIN
(Karras et al. 2020, Sec. 2.2). Scaling the input, convolving, then scaling the output is the
same as convolving with per-sample weights (NVlabs' non-fused path): one dense convolution for
the batch, and ordinary autograd, double backward included.

Noise: each layer adds per-pixel Gaussian noise times a learned strength (initialised 0). In
training mode the noise is fresh (global RNG); in eval mode it is a fixed buffer drawn at
construction (NVlabs' noise_mode='const'), so sampling is deterministic in z and never touches
the run's RNG. Output: a skip generator, the sum of every resolution's toRGB upsampled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.models.stylegan2.ops import EqualLinear, blur, fir_kernel, lrelu, upsample2d
from ganrun.models.stylegan2.sizes import block_resolutions, channels_at


def demodulation(weight: Tensor, styles: Tensor, eps: float = 1e-8) -> Tensor:
    """(B, out): 1 / ||weight[o] * styles[b]||_2 over (in, kh, kw) for each sample and output
    channel, computed from (out, in) sums without forming the per-sample weights."""
    sq = weight.square().sum(dim=(2, 3))  # (out, in)
    return (styles.square() @ sq.t() + eps).rsqrt()


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    demodulate: bool = True,
    padding: int = 0,
    up_kernel: Tensor | None = None,
) -> Tensor:
    """conv(x, weight * styles[b] (* demodulation)) per sample b; x (B, in, H, W), weight
    (out, in, k, k), styles (B, in).

    up_kernel (a FIR filter): upsample by 2 in NVlabs' order, a transposed convolution with
    stride 2 (a quarter of the multiply-adds of a convolution after upsampling), then the
    filter with gain 4; the same as filtering first away from the border.
    """
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    x = x * styles[:, :, None, None]
    if up_kernel is None:
        x = F.conv2d(x, weight, padding=padding)
    else:
        k, taps = weight.shape[-1], up_kernel.shape[-1]
        pad = padding + (taps + 1) // 2 - (k - 1), padding + (taps - 2) // 2 - (k - 2)
        x = blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2), up_kernel * 4, pad)
    if demodulate:
        x = x * demodulation(weight, styles)[:, :, None, None].to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated, demodulated 3x3 conv (upsampling by 2 when `up`), noise, bias, lrelu."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("kernel", fir_kernel(), persistent=False)
        self.up = up

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        up_kernel = self.kernel if self.up else None
        x = modulated_conv2d(x, self.weight, self.affine(w), True, padding=1, up_kernel=up_kernel)
        if self.training:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        x = x + noise * self.noise_strength.to(x.dtype)
        return lrelu(x + self.bias.to(x.dtype)[:, None, None])


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation, linear (equalized-lr gain on the
    styles, as NVlabs)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return x + self.bias.to(x.dtype)[:, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: (the learned 4x4 constant | upsampling conv), conv, toRGB; the image so
    far is FIR-upsampled and the block's toRGB added (skip architecture)."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int
    ) -> None:
        super().__init__()
        self.first = resolution == 4
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, img_channels, w_dim)
        self.num_conv = 1 if self.first else 2
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor) -> tuple[Tensor, Tensor]:
        """ws: (B, num_conv + 1, w_dim), the block's conv styles then its toRGB style."""
        if self.first:
            # a copy, not an expand: a view of a parameter keeps requires_grad even under
            # no_grad, which module hooks (FlopCounterMode) reject
            x = self.const.to(ws.dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, ws[:, 0])
        else:
            x = self.conv1(self.conv0(x, ws[:, 0]), ws[:, 1])
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else upsample2d(img, self.kernel).to(y.dtype) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> image (B, C, R, R); num_ws = 2 log2(R) - 2."""

    def __init__(
        self, w_dim: int, resolution: int, img_channels: int, channel_base: int, width: int
    ) -> None:
        super().__init__()
        blocks = []
        for res in block_resolutions(resolution):
            c_in = channels_at(res // 2, channel_base, width)
            c_out = channels_at(res, channel_base, width)
            blocks.append(SynthesisBlock(c_in, c_out, w_dim, res, img_channels))
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(b.num_conv for b in blocks) + 1  # toRGB shares the next conv's w

    def forward(self, ws: Tensor) -> Tensor:
        x = img = None
        start = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, start : start + block.num_conv + 1])
            start += block.num_conv
        return img

"""pix2pix's U-Net generator (Isola et al. 2017; Ronneberger et al. 2015).

An encoder of stride-2 4x4 convs down to 1x1 (or as far as the resolution halves evenly), a
decoder of stride-2 4x4 transposed convs, and a skip connection from every encoder level to
the decoder level of the same size: the low-level structure of the input (edges, layout)
reaches the output directly. Its depth follows the resolution (8 levels at 256 px, 4 at 16 px).
pix2pix has no latent z; its noise is dropout 0.5, kept on while training, in the decoder of
the `dropout_blocks` levels just outside the innermost one (3 at 256 px, as in the paper).

`residual=True` (ours, not the paper's; the global residual of VDSR, Kim et al. 2016) makes the
output the source plus the U-Net's correction, `a + up(...)` with no tanh: a grey source is
copied to every output channel first, so the untrained network already gives the task's
baseline (the bicubic image, the grey copy) and learns what to add. The output may leave
[-1, 1] slightly; evaluation and saved images clamp it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.models.layers import dcgan_init, dropout_layers, image_shape
from ganrun.models.norms import check_norm, conv_bias, norm_layer


def halvings(resolution: int) -> int:
    """How many times a 4x4 stride-2 conv can halve `resolution` and its transpose restore it:
    the number of factors of 2 in it (log2 for powers of two)."""
    depth = 0
    while resolution % 2 == 0 and resolution > 1:
        resolution //= 2
        depth += 1
    return depth


class UNetLevel(nn.Module):
    """One level: down(x) -> inner -> up(cat(x', inner)); the outermost returns tanh(up)."""

    def __init__(
        self,
        outer: int,
        inner: int,
        sub: nn.Module | None,
        norm: str,
        dropout: float,
        in_channels: int | None = None,
        out_channels: int | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        outermost, innermost = in_channels is not None, sub is None
        bias = conv_bias(norm)
        down: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2, True)]
        down.append(nn.Conv2d(in_channels or outer, inner, 4, 2, 1, bias=bias))
        if not (outermost or innermost):
            down.append(norm_layer(norm, inner))
        up_in = inner if innermost else inner * 2  # the sub-levels' output is cat(x, up)
        up: list[nn.Module] = [nn.ReLU(True)]
        if outermost:
            up.append(nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1))
            up += [] if residual else [nn.Tanh()]
        else:
            up += [nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=bias), norm_layer(norm, outer)]
            up += dropout_layers(dropout)
        self.down, self.sub, self.up = nn.Sequential(*down), sub, nn.Sequential(*up)
        self.outermost, self.residual = outermost, residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.down(x)
        if self.sub is not None:
            y = self.sub(y)
        y = self.up(y)
        if self.residual:
            return x.expand_as(y) + y  # a grey source is added to every output channel
        return y if self.outermost else torch.cat([x, y], 1)


class UNetGenerator(nn.Module):
    """Source image (in_channels, H, W) -> target image data_shape, in [-1, 1]."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        in_channels: int | None = None,
        width: int = 64,
        depth: int | None = None,
        norm: str = "batch",
        dropout: float = 0.5,
        dropout_blocks: int = 3,
        residual: bool = False,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "unet")
        check_norm(norm, "generator")
        source = channels if in_channels is None else in_channels
        if residual and source not in (1, channels):
            raise GanrunError(
                f"generator.residual=true adds the source image to the output, but the source "
                f"has {source} channels and the target {channels}: it needs 1 (a grey source, "
                f"copied to every channel) or {channels}. Use generator.residual=false here."
            )
        most = halvings(resolution)
        depth = most if depth is None else depth
        if not 2 <= depth <= most:
            raise GanrunError(
                f"generator.depth={depth} does not fit {resolution} px images: the U-Net halves "
                f"the image `depth` times and needs 2 <= depth <= {most} here (the factors of 2 "
                f"in {resolution}). Use depth=null (as deep as the resolution allows), or a "
                f"resolution with more factors of 2 (16, 32, 64, 256)."
            )
        widths = [width * min(2**i, 8) for i in range(depth)]
        level: UNetLevel | None = None
        for i in range(depth - 1, 0, -1):  # innermost first
            drop = dropout if depth - 1 - dropout_blocks <= i < depth - 1 else 0.0
            level = UNetLevel(widths[i - 1], widths[i], level, norm, drop)
        self.net = UNetLevel(channels, widths[0], level, norm, 0.0, source, channels, residual)
        self.depth = depth
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

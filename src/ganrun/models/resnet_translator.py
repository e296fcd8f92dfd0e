"""CycleGAN's ResNet generator (Zhu et al. 2017, after Johnson et al. 2016's style transfer
net), also StarGAN's G (Choi et al. 2018) with the target label as extra input channels.

    reflect-pad 3, 7x7 conv, norm, ReLU          (width)
    `downsampling` x [3x3 stride-2 conv, norm, ReLU]   (width x2 each)
    `blocks` x residual [reflect-pad 1, 3x3 conv, norm, ReLU, reflect-pad 1, 3x3 conv, norm]
    `downsampling` x [3x3 stride-2 transposed conv, norm, ReLU]
    reflect-pad 3, 7x7 conv, tanh

Reflection padding keeps the borders free of the artefacts zero padding leaves in translated
images; instance norm (the default) normalises each image alone, as style transfer needs.
CycleGAN uses 9 blocks at 256 px and 6 at 128 px and below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.models.layers import dcgan_init, image_shape
from ganrun.models.norms import check_norm, conv_bias, norm_layer


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class InputPad(nn.Module):
    """Reflection padding for the image channels, zeros for the last `zero_channels` (constant
    conditioning planes: reflected, a constant plane convolves to a constant that the instance
    norm after the first conv subtracts exactly; zero-padded, its edge stays visible)."""

    def __init__(self, padding: int, zero_channels: int) -> None:
        super().__init__()
        self.padding, self.zero_channels = (padding,) * 4, zero_channels

    def forward(self, x: Tensor) -> Tensor:
        split = x.shape[1] - self.zero_channels
        image = F.pad(x[:, :split], self.padding, mode="reflect")
        return torch.cat([image, F.pad(x[:, split:], self.padding)], 1)


class ResNetTranslator(nn.Module):
    """Source image (in_channels, H, W) -> target image data_shape, in [-1, 1]. The last
    `zero_padded` input channels are zero-padded, not reflected (StarGAN's domain planes)."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        in_channels: int | None = None,
        width: int = 64,
        blocks: int = 9,
        downsampling: int = 2,
        norm: str = "instance",
        zero_padded: int = 0,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "resnet_translator")
        check_norm(norm, "generator")
        if blocks < 0 or downsampling < 0 or resolution % 2**downsampling or resolution < 8:
            raise GanrunError(
                f"generator.blocks={blocks}, generator.downsampling={downsampling} do not fit "
                f"{resolution} px images: both must be >= 0, the resolution at least 8 and "
                f"divisible by 2**downsampling. CycleGAN uses blocks=9 at 256 px, 6 below, and "
                f"downsampling=2."
            )
        bias = conv_bias(norm)
        source = channels if in_channels is None else in_channels
        layers: list[nn.Module] = [
            InputPad(3, zero_padded) if zero_padded else nn.ReflectionPad2d(3),
            nn.Conv2d(source, width, 7, bias=bias),
            norm_layer(norm, width),
            nn.ReLU(True),
        ]
        c = width
        for _ in range(downsampling):
            layers += [
                nn.Conv2d(c, c * 2, 3, 2, 1, bias=bias),
                norm_layer(norm, c * 2),
                nn.ReLU(True),
            ]
            c *= 2
        layers += [ResidualBlock(c, norm) for _ in range(blocks)]
        for _ in range(downsampling):
            up = nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias)
            layers += [up, norm_layer(norm, c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

"""DCGAN (Radford et al. 2016), parametric in resolution and channels.

At 64x64 this is the paper's network: five (transposed) convolutions per side, BatchNorm,
ReLU in G and LeakyReLU(0.2) in D, tanh output, N(0, 0.02) initialisation. Other sizes keep
the same pattern with one stage fewer or more per factor of two (28 = 7 * 2**2 for MNIST).
"""

from __future__ import annotations

import torch
from torch import nn

from ganrun.models.layers import dcgan_init, dropout_layers, image_shape, upsampling_plan


class DCGANGenerator(nn.Module):
    """z -> (start x start, width * 2**(stages-1) channels) -> x2 per stage -> tanh image."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int = 100, width: int = 64) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "dcgan")
        start, stages = upsampling_plan(resolution, "dcgan")
        self.z_dim = z_dim
        widths = [width * 2**i for i in reversed(range(stages))]  # e.g. 8w 4w 2w w at 64x64
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], start, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Image -> strided convs doubling the width (BatchNorm after the first) -> one logit.

    dropout > 0 adds dropout after each LeakyReLU.
    """

    def __init__(
        self, data_shape: tuple[int, ...], width: int = 64, slope: float = 0.2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "dcgan")
        start, stages = upsampling_plan(resolution, "dcgan")
        widths = [width * 2**i for i in range(stages)]  # e.g. w 2w 4w 8w at 64x64
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(slope, True),
            *dropout_layers(dropout),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(slope, True),
                *dropout_layers(dropout),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, start, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, C, start, start), before the logit conv."""
        return self.net[:-1](x)

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.net[-1](h).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

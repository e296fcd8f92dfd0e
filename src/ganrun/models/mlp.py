"""The original GAN pair (Goodfellow et al. 2014): fully connected G and D.

Works for 2-D points and for images (flattened), which makes it the model of the
mode-collapse benchmarks on ring8 / grid25.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganrun.models.layers import dropout_layers


def _mlp(sizes: list[int], slope: float, dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(slope) if slope else nn.ReLU()]
        layers += dropout_layers(dropout)
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return layers


class MLPGenerator(nn.Module):
    """z -> `depth` hidden layers of `width` units -> a sample of `data_shape`.

    Images get a tanh output (data lives in [-1, 1]); points get a linear output.
    """

    def __init__(
        self,
        data_shape: tuple[int, ...],
        z_dim: int = 64,
        width: int = 256,
        depth: int = 3,
        slope: float = 0.0,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.data_shape = tuple(data_shape)
        out = _mlp([z_dim] + [width] * depth + [math.prod(self.data_shape)], slope)
        if len(self.data_shape) == 3:
            out.append(nn.Tanh())
        self.net = nn.Sequential(*out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.data_shape)


class MLPDiscriminator(nn.Module):
    """A sample -> `depth` hidden layers of `width` units -> one logit per sample.

    dropout > 0 adds dropout after each hidden activation (a classic D regulariser).
    """

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 256,
        depth: int = 3,
        slope: float = 0.2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        sizes = [math.prod(data_shape)] + [width] * depth + [1]
        self.net = nn.Sequential(*_mlp(sizes, slope, dropout))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (B, width)."""
        return self.net[:-1](x.flatten(1))

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.net[-1](h).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

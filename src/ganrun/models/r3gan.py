"""R3GAN's networks (Huang et al., NeurIPS 2024, "The GAN is dead; long live the GAN!").

A modernised (ConvNeXt-style) residual G and D with no normalisation layers at all: the
paper's point is that a well-posed loss (RpGAN + R1 + R2, loss=r3gan) lets a plain ResNet
train without the tricks of StyleGAN. Each residual block is

    x + conv1x1(act(grouped conv3x3(act(conv1x1(x)))))    (act: leaky ReLU 0.2)

widened by `expansion` inside and grouped in `group_width`-channel groups (the paper's
cardinality = hidden channels / group_width). Fix-up initialisation (Zhang et al. 2019) keeps
the residual sum's variance from growing with depth, instead of a normalisation layer: the
last conv of every block starts at zero (each block starts as the identity), and the others
get He init scaled by L^-1/4, L the number of blocks of that network (the paper's
L^(-1/(2m-2)) with m = 3 convs per block).

Resolution changes by 2 between stages with bilinear FIR resampling (models/resample.py).
G: z (+ class embedding) -> a learned 4x4 basis scaled per channel by a linear map of z ->
stages of blocks, upsampling between them -> 1x1 conv to the image (no tanh, as in R3GAN).
D: 1x1 conv from the image -> stages of blocks, downsampling between them -> a depthwise
4x4 conv to one vector (the basis) -> linear to a logit, or projected on a class embedding.
Widths are one number for every stage, as in the paper's CIFAR-10 and Stacked MNIST presets.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.models.layers import image_shape, upsampling_plan
from ganrun.models.resample import downsample2d, upsample2d

SLOPE = 0.2  # leaky ReLU slope (R3GAN)
ACT_GAIN = math.sqrt(2.0 / (1.0 + SLOPE**2))  # He gain of a leaky ReLU


def he_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """N(0, (gain / sqrt(fan_in))^2) weights, zero bias: unit-variance outputs before gain."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def act(x: Tensor) -> Tensor:
    return F.leaky_relu(x, SLOPE)


class ResidualBlock(nn.Module):
    """x + conv3(act(conv2(act(conv1(x))))): 1x1 expand, grouped 3x3, 1x1 back; fix-up init."""

    def __init__(self, channels: int, expansion: int, group_width: int, n_blocks: int) -> None:
        super().__init__()
        hidden = channels * expansion
        per_group = min(group_width, hidden)  # a model narrower than one group: one group
        if hidden % per_group:
            raise GanrunError(
                f"model r3gan: a block's {hidden} hidden channels (width x expansion) do not "
                f"split into groups of group_width={group_width}. Set model.generator/"
                f"discriminator.group_width to a divisor of {hidden}, or change width."
            )
        scale = ACT_GAIN * n_blocks ** (-1.0 / 4.0)  # fix-up: L^(-1/(2m-2)), m=3 convs
        self.conv1 = he_init(nn.Conv2d(channels, hidden, 1), scale)
        self.conv2 = he_init(
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden // per_group), scale
        )
        self.conv3 = nn.Conv2d(hidden, channels, 1, bias=False)
        nn.init.zeros_(self.conv3.weight)  # fix-up: the block starts as the identity

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv3(act(self.conv2(act(self.conv1(x)))))


def stage_count(resolution: int) -> tuple[int, int]:
    """(start size, stages): one stage at the start size and one per doubling after it."""
    start, doublings = upsampling_plan(resolution, "r3gan")
    return start, doublings + 1


def blocks(width: int, count: int, expansion: int, group_width: int, total: int) -> nn.Sequential:
    return nn.Sequential(
        *[ResidualBlock(width, expansion, group_width, total) for _ in range(count)]
    )


class R3GANGenerator(nn.Module):
    """z (B, z_dim) [+ labels y] -> images (B, C, H, W)."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        z_dim: int = 64,
        width: int = 768,
        blocks_per_stage: int = 2,
        expansion: int = 2,
        group_width: int = 16,
        num_classes: int | None = None,
        embed_dim: int | None = None,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "r3gan")
        self.start, n_stages = stage_count(resolution)
        self.z_dim, self.num_classes = z_dim, num_classes
        embed_dim = (embed_dim or z_dim) if num_classes else 0  # R3GAN: the noise size
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 1.0)  # a one-hot through a unit linear map
        # the generative basis: a learned constant map, one scale per channel from z
        self.basis = nn.Parameter(torch.randn(width, self.start, self.start))
        self.linear = he_init(nn.Linear(z_dim + embed_dim, width, bias=False))
        total = blocks_per_stage * n_stages
        self.stages = nn.ModuleList(
            blocks(width, blocks_per_stage, expansion, group_width, total) for _ in range(n_stages)
        )
        self.out = he_init(nn.Conv2d(width, channels, 1))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = z.flatten(1)
        if self.embed is not None:
            if y is None:
                raise GanrunError("R3GANGenerator was built with num_classes: call it with y=.")
            h = torch.cat([h, self.embed(y).to(h.dtype)], dim=1)
        h = self.basis.unsqueeze(0) * self.linear(h)[:, :, None, None]
        for i, stage in enumerate(self.stages):
            h = stage(upsample2d(h) if i else h)
        return self.out(h)


class R3GANDiscriminator(nn.Module):
    """images (B, C, H, W) [+ labels y] -> logits (B,)."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 768,
        blocks_per_stage: int = 2,
        expansion: int = 2,
        group_width: int = 16,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "r3gan")
        start, n_stages = stage_count(resolution)
        self.num_classes = num_classes
        self.extract = he_init(nn.Conv2d(channels, width, 1))
        total = blocks_per_stage * n_stages
        self.stages = nn.ModuleList(
            blocks(width, blocks_per_stage, expansion, group_width, total) for _ in range(n_stages)
        )
        # the discriminative basis: one depthwise start x start filter per channel
        self.basis = he_init(nn.Conv2d(width, width, start, groups=width, bias=False))
        self.linear = he_init(nn.Linear(width, 1, bias=False))  # RpGAN sees D(f) - D(r) only
        self.embed = nn.Embedding(num_classes, width) if num_classes else None
        if self.embed is not None:  # projection (R3GAN's conditional D)
            nn.init.normal_(self.embed.weight, 0.0, 1.0 / math.sqrt(width))

    def features(self, x: Tensor) -> Tensor:
        """The basis vector (B, width) that the logit (and a projection) reads."""
        h = self.extract(x)
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i < len(self.stages) - 1:
                h = downsample2d(h)
        return self.basis(h).flatten(1)

    def classify(self, h: Tensor) -> Tensor:
        return self.linear(h).squeeze(1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)
        out = self.classify(h)
        if self.embed is None:
            return out
        if y is None:
            raise GanrunError("R3GANDiscriminator was built with num_classes: call it with y=.")
        return out + (self.embed(y).to(h.dtype) * h).sum(dim=1)

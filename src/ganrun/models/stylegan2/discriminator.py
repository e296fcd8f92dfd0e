"""StyleGAN2's residual discriminator, with minibatch standard deviation and, for the
conditional variant, a projection onto a label mapping (NVlabs' cmap).

    fromRGB (1x1) -> one block per resolution R..8 -> epilogue at 4x4 -> logit (B,)

A block is conv3x3, conv3x3 with FIR downsampling, plus (residual=True) a 1x1 downsampling
skip; both branches are scaled by sqrt(1/2) so the sum keeps unit variance. residual=False is
NVlabs' 'orig' architecture (their cifar config). The epilogue appends the minibatch standard
deviation (the mean over features of the per-group std, so D can see a lack of variety),
then conv3x3, a fully connected layer and the output layer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ganrun.models.stylegan2.mapping import MappingNetwork
from ganrun.models.stylegan2.ops import EqualConv2d, EqualLinear
from ganrun.models.stylegan2.sizes import block_resolutions, channels_at, stylegan2_shape


def group_size_for(batch: int, group_size: int) -> int:
    """The largest group <= group_size that divides the batch (group_size itself whenever the
    batch is a multiple of it, as NVlabs require; smaller for odd batches instead of failing)."""
    g = min(group_size, batch)
    while batch % g:
        g -= 1
    return g


def minibatch_stddev(x: Tensor, group_size: int, num_channels: int = 1) -> Tensor:
    """x with `num_channels` feature maps appended: for each group of samples (sample i is in
    group i mod B/G) the std over the group, averaged over channels and pixels."""
    b, c, h, w = x.shape
    g = group_size_for(b, group_size)
    y = x.float().reshape(g, -1, num_channels, c // num_channels, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()
    y = y.mean(dim=(2, 3, 4)).reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, tmp_channels: int, out_channels: int, residual: bool = True) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(tmp_channels, tmp_channels, 3)
        self.conv1 = EqualConv2d(tmp_channels, out_channels, 3, down=True)
        self.skip = (
            EqualConv2d(tmp_channels, out_channels, 1, bias=False, activation=False, down=True)
            if residual
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.skip is None:
            return self.conv1(self.conv0(x))
        gain = math.sqrt(0.5)
        return self.skip(x, gain=gain) + self.conv1(self.conv0(x), gain=gain)


class StyleGAN2Discriminator(nn.Module):
    """Images (B, C, R, R) [and classes y (B,)] -> logits (B,)."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 512,
        channel_base: int = 32768,
        residual: bool = True,
        mbstd_group: int = 4,
        mbstd_channels: int = 1,
        num_classes: int | None = None,
        cmap_dim: int | None = None,
        mapping_layers: int = 8,
    ) -> None:
        super().__init__()
        channels, resolution = stylegan2_shape(data_shape)
        self.mbstd_group, self.mbstd_channels = mbstd_group, mbstd_channels
        top = channels_at(resolution, channel_base, width)
        self.fromrgb = EqualConv2d(channels, top, 1)
        self.blocks = nn.Sequential(
            *(
                DiscriminatorBlock(
                    channels_at(res, channel_base, width),
                    channels_at(res // 2, channel_base, width),
                    residual,
                )
                for res in reversed(block_resolutions(resolution)[1:])
            )
        )
        c4 = channels_at(4, channel_base, width)
        self.conv = EqualConv2d(c4 + mbstd_channels, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.cmap_dim = (cmap_dim or c4) if num_classes else None
        self.out = EqualLinear(c4, self.cmap_dim or 1)
        self.cmap = (
            MappingNetwork(0, self.cmap_dim, num_classes, mapping_layers, w_avg_beta=None)
            if num_classes
            else None
        )

    def features(self, x: Tensor) -> Tensor:
        """The epilogue's feature vector (B, C4), before the output layer."""
        x = self.blocks(self.fromrgb(x))
        x = self.conv(minibatch_stddev(x, self.mbstd_group, self.mbstd_channels))
        return self.fc(x.flatten(1))

    def classify(self, h: Tensor) -> Tensor:
        """The unconditional logit of features h."""
        return self.out(h).squeeze(1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)
        if self.cmap is None:
            return self.classify(h)
        cmap = self.cmap(None, y)
        return (self.out(h) * cmap.to(h.dtype)).sum(dim=1) / math.sqrt(self.cmap_dim)

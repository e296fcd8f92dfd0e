"""SNGAN residual networks (Miyato et al. 2018, after Gulrajani et al. 2017's ResNet GAN).

G: z -> linear -> 4x4 map -> one upsampling residual block per factor of two -> BN, ReLU,
3x3 conv, tanh. D: an "optimized" first block, downsampling residual blocks to 8x8, two
more blocks at 8x8, ReLU, global sum pooling, linear. At 32x32 with widths 256 (G) and
128 (D) this is SNGAN's CIFAR-10 network; 64x64 adds one block per side. Spectral norm on
D comes from the model key `sn_d` (true in model/resnet.yaml). `attention_resolution` adds
SAGAN's self-attention block (layers.SelfAttention) after the block that makes that size
(off by default). BigGAN (models/biggan.py) reuses these blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganrun.errors import GanrunError
from ganrun.models.layers import SelfAttention, image_shape, upsampling_plan


class GBlock(nn.Module):
    """BN-ReLU-up-conv-BN-ReLU-conv, plus an upsampled 1x1-conv shortcut.

    `cond` reaches both norms (BigGAN's conditional BatchNorm takes the block's condition);
    plain BatchNorm gets none.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, *cond)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), *cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class DBlock(nn.Module):
    """(ReLU)-conv-ReLU-conv(-avgpool), plus a 1x1-conv(-avgpool) shortcut.

    The first block of D ("optimized") has no leading ReLU, and its shortcut pools first.
    """

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or down) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.first:
            return h + self.shortcut(F.avg_pool2d(x, 2))
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


def with_attention(
    blocks: list[nn.Module], sizes: list[int], width: int, resolution: int | None, where: str
) -> list[nn.Module]:
    """`blocks` with a SelfAttention after the block whose output size (sizes[i]) is
    `resolution` (the first such block); unchanged for None."""
    if resolution is None:
        return blocks
    if resolution not in sizes:
        raise GanrunError(
            f"{where}.attention_resolution={resolution}: no block of this network outputs "
            f"{resolution}x{resolution} maps (its blocks output {sorted(set(sizes))}). Set it "
            f"to one of those, or null for no self-attention."
        )
    i = sizes.index(resolution)
    return [*blocks[: i + 1], SelfAttention(width), *blocks[i + 1 :]]


def _xavier(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ResNetGenerator(nn.Module):
    def __init__(
        self,
        data_shape: tuple[int, ...],
        z_dim: int = 128,
        width: int = 256,
        attention_resolution: int | None = None,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "resnet")
        start, stages = upsampling_plan(resolution, "resnet")
        self.z_dim, self.width, self.start = z_dim, width, start
        self.linear = nn.Linear(z_dim, start * start * width)
        blocks = [GBlock(width, width) for _ in range(stages)]
        sizes = [start * 2 ** (i + 1) for i in range(stages)]
        where = "model.generator"
        self.blocks = nn.Sequential(
            *with_attention(blocks, sizes, width, attention_resolution, where)
        )
        self.out = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()
        )
        self.apply(_xavier)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z.flatten(1)).view(z.shape[0], self.width, self.start, self.start)
        return self.out(self.blocks(h))


class ResNetDiscriminator(nn.Module):
    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 128,
        attention_resolution: int | None = None,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "resnet")
        _, stages = upsampling_plan(resolution, "resnet")
        downs = max(stages - 1, 1)  # down to 8x8 (7x7 for MNIST's 28)
        blocks = [DBlock(channels, width, down=True, first=True)]
        blocks += [DBlock(width, width, down=True) for _ in range(downs - 1)]
        blocks += [DBlock(width, width, down=False) for _ in range(2)]
        sizes = [resolution // 2 ** min(i + 1, downs) for i in range(len(blocks))]
        where = "model.discriminator"
        self.blocks = nn.Sequential(
            *with_attention(blocks, sizes, width, attention_resolution, where)
        )
        self.linear = nn.Linear(width, 1)
        self.apply(_xavier)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally sum-pooled block activations (B, width)."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

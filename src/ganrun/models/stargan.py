"""StarGAN's networks (Choi et al. 2018): one G for every pair of domains, and a D with two
heads on one trunk.

- G is CycleGAN's ResNet translator (models/resnet_translator.py) whose input carries the
  target domain as extra constant one-hot channels beside the image: G(x, c). The image is
  reflection-padded for the first 7x7 conv, the domain planes zero-padded (the paper's
  padding=3): a constant plane, reflection-padded, convolves to a constant that the instance
  norm right after subtracts exactly, so G would never see c; zero padding leaves the plane's
  edge in the map, from which G reads the target domain (as the paper's G does).
- D is a stack of stride-2 4x4 convs with LeakyReLU(0.01) and no normalisation, then a 3x3
  conv to a map of real/fake logits (forward, what the zoo's losses and penalties see) and a
  conv covering the whole remaining map to the domain logits (`classify`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganrun.models.layers import dcgan_init, image_shape
from ganrun.models.resnet_translator import ResNetTranslator


def domain_maps(y: Tensor, num_domains: int, like: Tensor) -> Tensor:
    """(B,) domain indices -> (B, num_domains, H, W) one-hot maps in like's dtype and size."""
    onehot = nn.functional.one_hot(y.long(), num_domains).to(like.dtype)
    return onehot[:, :, None, None].expand(-1, -1, *like.shape[2:])


class StarGenerator(nn.Module):
    """x (in_channels, H, W) and target domains y (B,) -> the image in domain y, in [-1, 1]."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        num_domains: int,
        in_channels: int | None = None,
        width: int = 64,
        blocks: int = 6,
        downsampling: int = 2,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        source = data_shape[0] if in_channels is None else in_channels
        self.num_domains = num_domains
        self.net = ResNetTranslator(  # the domain planes zero-padded, the image reflected
            data_shape, source + num_domains, width, blocks, downsampling, norm, num_domains
        )

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x, domain_maps(y, self.num_domains, x)], 1))


def halvings_to(resolution: int, smallest: int = 2) -> int:
    """How many stride-2 4x4 convs (size -> size // 2) keep the map at least `smallest` wide:
    6 at 128 px (the paper's D), 3 at 16 or 28 px."""
    depth = 0
    while resolution // 2 >= smallest:
        resolution //= 2
        depth += 1
    return depth


class StarDiscriminator(nn.Module):
    def __init__(
        self,
        data_shape: tuple[int, ...],
        num_domains: int,
        width: int = 64,
        depth: int | None = None,
        slope: float = 0.01,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "stargan")
        depth = halvings_to(resolution) if depth is None else depth
        layers: list[nn.Module] = []
        c_in, c, size = channels, width, resolution
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(slope, True)]
            c_in, c, size = c, min(c * 2, width * 32), size // 2
        self.trunk = nn.Sequential(*layers)
        self.src = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)  # real/fake logit per patch
        self.cls = nn.Conv2d(c_in, num_domains, size, bias=False)  # sees the whole map
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.src(self.trunk(x)).squeeze(1)

    def classify(self, x: Tensor) -> Tensor:
        """(B, num_domains) domain logits."""
        return self.cls(self.trunk(x)).flatten(1)

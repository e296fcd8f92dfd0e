"""BigGAN (Brock et al. 2019): SNGAN's residual G and D (models/resnet.py blocks) with the
parts that let it scale to ImageNet classes.

- Class-conditional BatchNorm from a *shared* class embedding: one embedding per class,
  shared by every block, and each BatchNorm of a block gets gain 1 + W_g c and bias W_b c
  from that block's condition c (one small linear map per norm instead of a table of
  per-class gains per norm).
- Hierarchical z: z is cut into (blocks + 1) equal chunks; the first feeds the linear layer
  that makes the 4x4 map, and chunk i + 1 is concatenated with the shared embedding to
  condition block i, so the latent reaches every resolution directly.
- Self-attention (SAGAN) after the block of `attention_resolution` in G and in D.
- Projection D: D(x, y) = linear(phi(x)) + <embed(y), phi(x)>.
- Spectral norm in G and D comes from model/biggan.yaml (sn_g, sn_d); orthogonal init here.
- The truncation trick: `truncation=t` draws z from a normal truncated to [-t, t].

Built without `num_classes` (unconditional), G has plain BatchNorm, no embedding and one
unsplit z; D has no projection. conditioning=native builds the class-conditional model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.models.layers import image_shape, upsampling_plan
from ganrun.models.resnet import GBlock, ResNetDiscriminator, with_attention


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights (Saxe et al. 2014, as BigGAN), zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
        nn.init.orthogonal_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


def truncated_normal(z: Tensor, truncation: float) -> Tensor:
    """Map N(0, 1) draws onto a normal truncated to [-t, t], one to one (inverse CDF).

    u = Phi(z) is uniform; squeezing it into [Phi(-t), Phi(t)] and mapping back with Phi^-1
    gives a truncated normal that depends on z alone, so a seed gives the same samples with
    and without other draws around it (rejection resampling would consume extra draws).
    """
    if not truncation > 0:
        raise GanrunError(
            f"truncation={truncation}: BigGAN truncates z to [-t, t], so t must be > 0 "
            f"(smaller = less varied, more typical samples; null = no truncation)."
        )
    zd = z.double()
    lo = torch.special.ndtr(torch.tensor(-float(truncation), dtype=torch.float64))
    u = lo + torch.special.ndtr(zd) * (1.0 - 2.0 * lo)
    return torch.special.ndtri(u).clamp(-truncation, truncation).to(z.dtype)


class SharedConditionBatchNorm(nn.Module):
    """BatchNorm without its own affine; gain 1 + W_g c and bias W_b c from a condition c."""

    def __init__(self, num_features: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Linear(cond_dim, num_features, bias=False)
        self.bias = nn.Linear(cond_dim, num_features, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gain = 1.0 + self.gain(cond).to(x.dtype)
        bias = self.bias(cond).to(x.dtype)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


class BigGANGenerator(nn.Module):
    """z (B, z_dim) [+ labels y] -> images in [-1, 1]; `truncation` at sampling time."""

    supports_truncation = True  # sampling passes truncation= (ganrun sample truncation=0.5)

    def __init__(
        self,
        data_shape: tuple[int, ...],
        z_dim: int = 120,
        width: int = 256,
        shared_dim: int = 128,
        attention_resolution: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "biggan")
        start, stages = upsampling_plan(resolution, "biggan")
        self.z_dim, self.width, self.start, self.num_classes = z_dim, width, start, num_classes
        self.shared = nn.Embedding(num_classes, shared_dim) if num_classes else None
        if self.shared is not None:
            if z_dim % (stages + 1):
                raise GanrunError(
                    f"model.z_dim={z_dim}: BigGAN's hierarchical z gives one equal chunk to "
                    f"the first layer and one to each of the {stages} blocks at this "
                    f"resolution, so z_dim must be a multiple of {stages + 1} (e.g. 120 works "
                    f"for 2 to 5 blocks, 16 to 128 px)."
                )
            self.chunk = z_dim // (stages + 1)
        else:
            self.chunk = z_dim  # unconditional: the whole z into the first layer
        self.linear = nn.Linear(self.chunk, start * start * width)
        blocks = [GBlock(width, width) for _ in range(stages)]
        if self.shared is not None:
            for block in blocks:
                block.bn1 = SharedConditionBatchNorm(width, self.chunk + shared_dim)
                block.bn2 = SharedConditionBatchNorm(width, self.chunk + shared_dim)
        sizes = [start * 2 ** (i + 1) for i in range(stages)]
        self.blocks = nn.ModuleList(
            with_attention(blocks, sizes, width, attention_resolution, "model.generator")
        )
        self.out = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()
        )
        self.apply(orthogonal_init)

    def conditions(self, z: Tensor, y: Tensor | None) -> tuple[Tensor, list[Tensor]]:
        """(the first layer's input, one condition per block): z's chunks with the shared
        embedding of y (conditional), or z and no conditions (unconditional)."""
        if self.shared is None:
            return z, []
        if y is None:
            raise GanrunError("BigGANGenerator was built with num_classes: call it with y=.")
        first, *rest = z.split(self.chunk, dim=1)
        shared = self.shared(y).to(z.dtype)
        return first, [torch.cat([chunk, shared], dim=1) for chunk in rest]

    def forward(
        self,
        z: Tensor,
        y: Tensor | None = None,
        truncation: float | None = None,
        truncation_cutoff: int | None = None,
    ) -> Tensor:
        if truncation_cutoff is not None:
            raise GanrunError(
                f"truncation_cutoff={truncation_cutoff}: BigGAN truncates z as a whole (no "
                f"per-layer w as in StyleGAN); drop truncation_cutoff and keep truncation=."
            )
        z = z.flatten(1)
        if truncation is not None:
            z = truncated_normal(z, truncation)
        h, conds = self.conditions(z, y)
        h = self.linear(h).view(z.shape[0], self.width, self.start, self.start)
        cond = iter(conds)
        for block in self.blocks:
            if isinstance(block, GBlock):
                h = block(h, *([next(cond)] if conds else []))
            else:  # the self-attention block
                h = block(h)
        return self.out(h)


class BigGANDiscriminator(ResNetDiscriminator):
    """SNGAN's residual D with self-attention and a projection head for class labels."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 256,
        attention_resolution: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(data_shape, width, attention_resolution)
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, width) if num_classes else None
        self.apply(orthogonal_init)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)
        out = self.classify(h)
        if self.embed is None:
            return out
        if y is None:
            raise GanrunError("BigGANDiscriminator was built with num_classes: call it with y=.")
        return out + (self.embed(y).to(h.dtype) * h).sum(dim=1)

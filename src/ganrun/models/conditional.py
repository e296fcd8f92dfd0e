"""Class-conditional wrappers that work with any architecture in models/.

Generator side:
- EmbeddingGenerator: z is concatenated with a learned label embedding (Mirza & Osindero
  2014); the wrapped G is built with the wider latent.
- ConditionalBNGenerator: every BatchNorm of the wrapped G gets per-class scale and shift
  (conditional BatchNorm, de Vries et al. 2017; as in SNGAN/BigGAN).
Discriminator side:
- ProjectionDiscriminator: D(x, y) = head(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama
  2018); needs a D that exposes `features(x)` and `classify(h)`.
- ACGANDiscriminator: an unconditional real/fake head plus an auxiliary classifier on the
  same features (Odena et al. 2017); its `aux_loss(x, y)` is the class cross-entropy that
  the losses add for D (reals and fakes) and for G (fakes).

Native conditioning (`conditioning=native`): a model with its own class conditioning
(StyleGAN2's label embedding into the mapping network, BigGAN's shared-embedding conditional
BatchNorm) is built with `num_classes` and no wrapper: native_generator/native_discriminator.

Every wrapper gets `make_base` (a factory of the plain network; keyword arguments reach the
model's constructor) rather than a built network, so native models fit the same call.
The wrapped network is `.base` (not `.module`), so checkpoints keep the whole conditional
model, embeddings included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.models.layers import replace_batchnorm


class EmbeddingGenerator(nn.Module):
    """G(z, y) = base([z, embed(y)])."""

    def __init__(
        self, make_base: Callable[..., nn.Module], num_classes: int, z_dim: int, embed_dim: int = 32
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.base = make_base(z_dim=z_dim + embed_dim)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.base(torch.cat([z.flatten(1), self.embed(y).to(z.dtype)], dim=1))


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine, then gamma(y) * x + beta(y); labels set per forward."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, num_classes: int) -> None:
        super().__init__()
        self.bn = type(bn)(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=False)
        self.gamma = nn.Embedding(num_classes, bn.num_features)
        self.beta = nn.Embedding(num_classes, bn.num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)
        self.labels: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        return self.bn(x) * self.gamma(self.labels).view(shape) + self.beta(self.labels).view(shape)


class ConditionalBNGenerator(nn.Module):
    """G(z, y) = base(z) with every BatchNorm conditioned on y."""

    def __init__(self, make_base: Callable[..., nn.Module], num_classes: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.base = make_base()
        self.cbn = replace_batchnorm(self.base, lambda bn: ConditionalBatchNorm(bn, num_classes))
        if not self.cbn:
            raise GanrunError(
                f"conditioning with conditional BatchNorm needs a generator with BatchNorm; "
                f"{type(self.base).__name__} has none. Use conditioning=projection (label "
                f"embedding) for this generator."
            )

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        for cbn in self.cbn:
            cbn.labels = y
        try:
            return self.base(z)
        finally:
            for cbn in self.cbn:
                cbn.labels = None


def feature_width(base: nn.Module, data_shape: tuple[int, ...], what: str) -> int:
    """Size of base.features(x) flattened; a clear error for a D without one feature vector."""
    if not (hasattr(base, "features") and hasattr(base, "classify")):
        raise GanrunError(
            f"{what} needs a discriminator with features() and classify(); "
            f"{type(base).__name__} has no single feature vector (PatchGAN judges patches). "
            f"Use model/discriminator=dcgan, resnet or mlp."
        )
    was_training = base.training
    base.eval()
    with torch.no_grad():
        width = base.features(torch.zeros(1, *data_shape)).flatten(1).shape[1]
    base.train(was_training)
    return width


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = base.classify(phi) + <embed(y), phi>, phi = base.features(x) flattened."""

    def __init__(
        self, make_base: Callable[..., nn.Module], num_classes: int, data_shape: tuple[int, ...]
    ) -> None:
        super().__init__()
        base = make_base()
        width = feature_width(base, data_shape, "projection conditioning")
        self.base = base
        self.embed = nn.Embedding(num_classes, width)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.base.features(x)
        projection = (self.embed(y).to(h.dtype) * h.flatten(1)).sum(dim=1)
        return self.base.classify(h) + projection


class ACGANDiscriminator(nn.Module):
    """Real/fake logits from the wrapped D, plus a linear class head on the same features."""

    def __init__(
        self,
        make_base: Callable[..., nn.Module],
        num_classes: int,
        data_shape: tuple[int, ...],
        weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.base = base = make_base()
        self.weight = weight
        self.classifier = nn.Linear(feature_width(base, data_shape, "ACGAN"), num_classes)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.base(x)  # the adversarial head is unconditional in ACGAN

    def class_logits(self, x: Tensor) -> Tensor:
        return self.classifier(self.base.features(x).flatten(1))

    def aux_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """weight * cross-entropy of the class head on x against labels y."""
        return self.weight * F.cross_entropy(self.class_logits(x).float(), y)


def native_generator(
    make_base: Callable[..., nn.Module], num_classes: int, z_dim: int
) -> nn.Module:
    """A generator that conditions itself: built with num_classes, called as G(z, y=labels)."""
    return make_base(num_classes=num_classes)


def native_discriminator(
    make_base: Callable[..., nn.Module], num_classes: int, data_shape: tuple[int, ...]
) -> nn.Module:
    """A discriminator that conditions itself: built with num_classes, called as D(x, y=labels)."""
    return make_base(num_classes=num_classes)

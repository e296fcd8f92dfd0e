"""Regularisers on the generator, with the same conventions as the penalties on D.

A method adds `weight * every * value` to G's loss on every `every`-th G step (lazy
regularisation, StyleGAN2), so the regulariser's average strength does not depend on k.
Configured under `method.g_regularisers`, e.g.

    ganrun train +method.g_regularisers.ortho._target_=ganrun.losses.regularisers.OrthogonalRegulariser
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganrun.losses.lazy import LazyTerm


class GeneratorRegulariser(LazyTerm):
    """A regulariser of G with its weight and lazy interval (see LazyTerm); subclasses return
    the unweighted value. `G` is the callable generator (labels bound for conditional models),
    `net` the plain module (for weight-based regularisers), `z` the step's latents.
    """

    def __call__(
        self, G: nn.Module, net: nn.Module, z: Tensor, grad_scale: Tensor | None = None
    ) -> Tensor:
        raise NotImplementedError


def orthogonality(weight: Tensor) -> Tensor:
    """||W W^T (1 - I)||_F^2 of a weight flattened to (out, -1) (BigGAN's off-diagonal form:
    filters are pushed apart without constraining their norms)."""
    w = weight.flatten(1).float()
    gram = w @ w.t()
    off_diagonal = gram * (1.0 - torch.eye(gram.shape[0], device=gram.device))
    return off_diagonal.pow(2).sum()


class OrthogonalRegulariser(GeneratorRegulariser):
    """BigGAN's orthogonal regularisation (Brock et al. 2019): the sum of orthogonality()
    over G's weight matrices and conv kernels (biases, norms and embeddings excluded);
    `weight` is beta (1e-4 in BigGAN)."""

    def __init__(self, weight: float = 1e-4, every: int = 1) -> None:
        super().__init__(weight, every)

    def __call__(
        self, G: nn.Module, net: nn.Module, z: Tensor, grad_scale: Tensor | None = None
    ) -> Tensor:
        total = torch.zeros((), device=z.device)
        for module in net.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                total = total + orthogonality(module.weight)
        return total

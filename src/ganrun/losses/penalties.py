"""Penalties on the discriminator, as pure functions plus a small weighted wrapper.

Any objective can carry any penalty: `loss.penalties.<name>` in the loss YAML.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def input_gradient_norm(D: nn.Module, x: Tensor) -> Tensor:
    """Per-sample L2 norm of dD(x)/dx, kept in the graph so the penalty can be minimised."""
    x = x.detach().requires_grad_(True)
    out = D(x)
    (grad,) = torch.autograd.grad(out.float().sum(), x, create_graph=True)
    return grad.flatten(1).float().norm(2, dim=1)


def gradient_penalty(D: nn.Module, real: Tensor, fake: Tensor, center: float = 1.0) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - center)^2] on random interpolates."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    # under autocast G's samples come out in bf16/fp16 while the reals stay float32: interpolate
    # in the reals' dtype (lerp needs one dtype)
    x_hat = torch.lerp(real.detach(), fake.detach().to(real.dtype), alpha.to(real.dtype))
    return (input_gradient_norm(D, x_hat) - center).pow(2).mean()


class Penalty:
    """A penalty on D with its weight; subclasses return the unweighted batch value.

    every: apply on every k-th D step only, weighted by k (lazy regularisation).
    """

    def __init__(self, weight: float, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"penalty interval every={every} must be >= 1")
        self.weight = weight
        self.every = every

    def __call__(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError


class GradientPenalty(Penalty):
    """weight * E[(||grad D(x_hat)|| - center)^2], x_hat between real and fake samples."""

    def __init__(self, weight: float = 10.0, center: float = 1.0, every: int = 1) -> None:
        super().__init__(weight, every)
        self.center = center

    def __call__(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return gradient_penalty(D, real, fake, self.center)

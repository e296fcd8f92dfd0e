"""Penalties on the discriminator, as pure functions plus a small weighted wrapper.

Any objective can carry any penalty: `loss.penalties.<name>` in the loss YAML, or added from
the command line, e.g.

    ganrun train loss=hinge +loss.penalties.r1._target_=ganrun.losses.penalties.R1Penalty \
        +loss.penalties.r1.weight=10

Gradients are taken in the inputs' dtype (bf16 under autocast) and reduced in float32.
Under fp16 with a grad scaler the loop passes the scaler's current scale as `grad_scale`: the
inner gradient is then taken of the scaled output and unscaled in float32 (the PyTorch AMP
gradient-penalty recipe), so small fp16 gradients inside D do not underflow to zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganrun.losses.lazy import LazyTerm


def input_gradient(D: nn.Module, x: Tensor, grad_scale: Tensor | None = None) -> Tensor:
    """dD(x)/dx per sample, flattened to (B, -1) and cast to float32; kept in the graph so a
    penalty built on it can be minimised.

    grad_scale (a 0-d tensor, the grad scaler's scale): differentiate grad_scale times the
    batch mean of D(x), as the AMP recipe scales a mean loss, so the fp16 backward through D
    stays out of the subnormal range; then unscale in float32 (times the batch size, for
    per-sample gradients). The mean, not the sum: the scaler starts at 2**16, which fp16
    (max 65504) cannot hold at D's output. A tensor, so reading the scale never syncs.
    """
    x = x.detach().requires_grad_(True)
    out = D(x).float()
    if grad_scale is None:
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        return grad.flatten(1).float()
    (grad,) = torch.autograd.grad(out.mean() * grad_scale, x, create_graph=True)
    return grad.flatten(1).float() * (out.numel() / grad_scale)


def input_gradient_norm(D: nn.Module, x: Tensor, grad_scale: Tensor | None = None) -> Tensor:
    """Per-sample L2 norm of dD(x)/dx."""
    return input_gradient(D, x, grad_scale).norm(2, dim=1)


def random_interpolate(a: Tensor, b: Tensor) -> Tensor:
    """a + alpha (b - a) with one alpha ~ U(0, 1) per sample.

    Under autocast G's samples come out in bf16/fp16 while the reals stay float32: interpolate
    in a's dtype (lerp needs one dtype).
    """
    alpha = torch.rand(a.shape[0], *([1] * (a.dim() - 1)), device=a.device)
    return torch.lerp(a.detach(), b.detach().to(a.dtype), alpha.to(a.dtype))


def norm_penalty(norm: Tensor, center: float = 1.0, one_sided: bool = False) -> Tensor:
    """E[(norm - center)^2]; one-sided: E[max(0, norm - center)^2] (only norms above count)."""
    gap = norm - center
    if one_sided:
        gap = torch.relu(gap)
    return gap.pow(2).mean()


def gradient_penalty(
    D: nn.Module,
    real: Tensor,
    fake: Tensor,
    center: float = 1.0,
    one_sided: bool = False,
    grad_scale: Tensor | None = None,
) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - center)^2] on random interpolates;
    one-sided is WGAN-LP (Petzka et al. 2018): E[max(0, ||grad D(x_hat)|| - center)^2]."""
    x_hat = random_interpolate(real, fake)
    return norm_penalty(input_gradient_norm(D, x_hat, grad_scale), center, one_sided)


def dragan_perturb(x: Tensor, scale: float = 0.5) -> Tensor:
    """DRAGAN's perturbed reals: x + scale * std(x) * U(0, 1) noise (std over the whole batch)."""
    x = x.detach()
    return x + scale * x.std() * torch.rand_like(x)


def dragan_penalty(
    D: nn.Module,
    real: Tensor,
    scale: float = 0.5,
    center: float = 1.0,
    grad_scale: Tensor | None = None,
) -> Tensor:
    """DRAGAN (Kodali et al. 2017): E[(||grad D(x_hat)|| - center)^2] with x_hat between the
    reals and their perturbations: the gradient penalty local to the data."""
    x_hat = random_interpolate(real, dragan_perturb(real, scale))
    return norm_penalty(input_gradient_norm(D, x_hat, grad_scale), center)


def zero_centered_penalty(D: nn.Module, x: Tensor, grad_scale: Tensor | None = None) -> Tensor:
    """1/2 E[||grad D(x)||^2] (Mescheder et al. 2018), squared norm summed in float32."""
    return 0.5 * input_gradient(D, x, grad_scale).pow(2).sum(dim=1).mean()


class Penalty(LazyTerm):
    """A penalty on D with its weight and lazy interval (see LazyTerm); subclasses return the
    unweighted batch value. grad_scale: the fp16 grad scaler's scale for the inner gradient
    (see input_gradient).
    """

    def __call__(
        self, D: nn.Module, real: Tensor, fake: Tensor, grad_scale: Tensor | None = None
    ) -> Tensor:
        raise NotImplementedError


class GradientPenalty(Penalty):
    """weight * E[(||grad D(x_hat)|| - center)^2], x_hat between real and fake samples;
    one_sided=True penalises only norms above `center` (WGAN-LP)."""

    def __init__(
        self, weight: float = 10.0, center: float = 1.0, one_sided: bool = False, every: int = 1
    ) -> None:
        super().__init__(weight, every)
        self.center = center
        self.one_sided = one_sided

    def __call__(
        self, D: nn.Module, real: Tensor, fake: Tensor, grad_scale: Tensor | None = None
    ) -> Tensor:
        return gradient_penalty(D, real, fake, self.center, self.one_sided, grad_scale)


class DraganPenalty(Penalty):
    """weight * E[(||grad D(x_hat)|| - 1)^2], x_hat near the reals (see dragan_penalty)."""

    def __init__(self, weight: float = 10.0, scale: float = 0.5, every: int = 1) -> None:
        super().__init__(weight, every)
        self.scale = scale

    def __call__(
        self, D: nn.Module, real: Tensor, fake: Tensor, grad_scale: Tensor | None = None
    ) -> Tensor:
        return dragan_penalty(D, real, self.scale, grad_scale=grad_scale)


class R1Penalty(Penalty):
    """R1: gamma/2 * E[||grad D(x)||^2] on reals; `weight` is gamma (the 1/2 is in the value)."""

    def __init__(self, weight: float = 10.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def samples(self, real: Tensor, fake: Tensor) -> Tensor:
        return real

    def __call__(
        self, D: nn.Module, real: Tensor, fake: Tensor, grad_scale: Tensor | None = None
    ) -> Tensor:
        return zero_centered_penalty(D, self.samples(real, fake), grad_scale)


class R2Penalty(R1Penalty):
    """R2: the same zero-centred penalty on generated samples."""

    def samples(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake

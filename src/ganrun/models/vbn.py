"""Virtual batch normalisation (Salimans et al. 2016, "Improved techniques for training GANs").

Each example is normalised with the statistics of a fixed reference batch combined with the
example itself (weight 1 / (N + 1)), so an output no longer depends on the other examples of
its minibatch. The reference latents are drawn once and kept in the state dict; every G call
first runs them through the network to collect each layer's reference statistics (the
method's known cost: one extra forward of the reference batch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.models.layers import replace_batchnorm


class VirtualBatchNorm(nn.Module):
    """VBN over channels of (N, C, H, W) or features of (N, C) inputs, with learned scale/shift."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.reference: tuple[Tensor, Tensor, int] | None = None  # mean, mean of squares, N

    def _affine(self, x: Tensor, mean: Tensor, meansq: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        var = (meansq - mean.square()).clamp_min(0)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(
            shape
        )

    def forward(self, x: Tensor) -> Tensor:
        spatial = tuple(range(2, x.dim()))
        if self.reference is None:  # the reference pass: plain batch statistics, remembered
            dims = (0, *spatial)
            mean, meansq = x.mean(dims, keepdim=True), x.square().mean(dims, keepdim=True)
            self.reference = (mean, meansq, x.shape[0])
            return self._affine(x, mean, meansq)
        ref_mean, ref_meansq, n = self.reference
        w = 1.0 / (n + 1)
        own_mean = x.mean(spatial, keepdim=True) if spatial else x
        own_meansq = x.square().mean(spatial, keepdim=True) if spatial else x.square()
        mean = w * own_mean + (1 - w) * ref_mean
        meansq = w * own_meansq + (1 - w) * ref_meansq
        return self._affine(x, mean, meansq)


class VirtualBatchNormGenerator(nn.Module):
    """G(z) with every BatchNorm of the wrapped G replaced by virtual batch norm."""

    def __init__(
        self,
        make_base: Callable[[], nn.Module],
        z_dim: int,
        reference_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.base = make_base()
        self.vbn = replace_batchnorm(
            self.base, lambda bn: VirtualBatchNorm(bn.num_features, bn.eps)
        )
        if not self.vbn:
            raise GanrunError(
                f"model.virtual_bn=true needs a generator with BatchNorm layers; "
                f"{type(self.base).__name__} has none. Use model=dcgan or model=resnet."
            )
        reference = torch.randn(
            reference_size, z_dim, generator=torch.Generator().manual_seed(seed)
        )
        self.register_buffer("reference_z", reference)

    def forward(self, z: Tensor) -> Tensor:
        for layer in self.vbn:
            layer.reference = None
        try:
            self.base(self.reference_z.to(z.dtype))  # fills each layer's reference statistics
            return self.base(z)
        finally:
            for layer in self.vbn:
                layer.reference = None

"""StyleGAN2's generator (Karras et al. 2020): the mapping network, then the synthesis network.

    G(z, y) = synthesis(styles(z, y)),  styles = w per synthesis layer (B, num_ws, w_dim)

Style mixing (training mode only, probability `mixing_prob`, 0.9 in the paper): the layers
from a random cutoff on take the w of a second latent, so that neighbouring layers' styles do
not become correlated. Like NVlabs, the cutoff, the coin and the second latent are drawn from
torch's global RNG on every training forward when mixing_prob > 0 (the run's seed fixes them),
and the choice is a tensor `where`, never a Python branch, so torch.compile sees one graph.

Truncation (eval): forward(z, truncation=psi, truncation_cutoff=k) pulls the first k layers'
w towards w_avg (see MappingNetwork.truncate). Path length regularisation differentiates the
image with respect to the styles: it calls `styles` and `synthesis` itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganrun.models.stylegan2.mapping import MappingNetwork
from ganrun.models.stylegan2.sizes import stylegan2_shape
from ganrun.models.stylegan2.synthesis import SynthesisNetwork


class StyleGAN2Generator(nn.Module):
    """z (B, z_dim) [and classes y (B,)] -> images (B, C, R, R) in about [-1, 1]."""

    supports_truncation = True  # forward takes truncation= and truncation_cutoff=

    def __init__(
        self,
        data_shape: tuple[int, ...],
        z_dim: int = 512,
        width: int = 512,
        w_dim: int | None = None,
        channel_base: int = 32768,
        mapping_layers: int = 8,
        mapping_lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
        mixing_prob: float = 0.9,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        channels, resolution = stylegan2_shape(data_shape)
        self.z_dim = z_dim
        self.w_dim = w_dim = w_dim or z_dim
        self.mixing_prob = mixing_prob
        self.synthesis = SynthesisNetwork(w_dim, resolution, channels, channel_base, width)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, w_dim, num_classes, mapping_layers, mapping_lr_mul, w_avg_beta
        )

    def styles(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(B, num_ws, w_dim): w of z for every layer, style-mixed in training mode."""
        w = self.mapping(z, y)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if not (self.training and self.mixing_prob > 0):
            return ws
        cutoff = torch.randint(1, self.num_ws, (), device=z.device)
        mix = torch.rand((), device=z.device) < self.mixing_prob
        cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, self.num_ws))
        w2 = self.mapping(torch.randn_like(z), y, update_w_avg=False)
        layer = torch.arange(self.num_ws, device=z.device).view(1, -1, 1)
        return torch.where(layer < cutoff, ws, w2[:, None])

    def forward(
        self,
        z: Tensor,
        y: Tensor | None = None,
        truncation: float | None = None,
        truncation_cutoff: int | None = None,
    ) -> Tensor:
        ws = self.styles(z, y)
        if truncation is not None:
            ws = self.mapping.truncate(ws, truncation, truncation_cutoff)
        return self.synthesis(ws)

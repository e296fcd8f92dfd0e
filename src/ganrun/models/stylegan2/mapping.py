"""StyleGAN2's mapping network: z (and a class label) -> w, with the running mean w_avg.

z is normalised by its second moment (so its scale never matters), the label's embedding is
normalised the same way and concatenated, then `layers` equalized-lr fully connected layers
with lr multiplier 0.01 (StyleGAN: the mapping learns 100x slower than the synthesis).
w_avg, the mean w the truncation trick pulls towards, is a buffer updated in training mode
with decay 0.995, as NVlabs do; the EMA generator copies it with the other buffers.

With z_dim=0 the network maps labels alone: StyleGAN2's D uses that for its projection
(cmap) in the conditional variant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.models.stylegan2.ops import EqualLinear


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x / sqrt(mean(x^2) + eps) per row."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """(z, y) -> w of shape (B, w_dim); num_ws copies of it per image come from `broadcast`."""

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_classes: int | None = None,
        layers: int = 8,
        lr_mul: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        width = z_dim + (w_dim if num_classes else 0)
        self.layers = nn.ModuleList(
            EqualLinear(width if i == 0 else w_dim, w_dim, lr_mul=lr_mul, activation=True)
            for i in range(layers)
        )
        self.w_avg_beta = w_avg_beta
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: Tensor | None, y: Tensor | None = None, update_w_avg: bool = True
    ) -> Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z.flatten(1).float()))
        if self.embed is not None:
            one_hot = F.one_hot(y.long(), self.num_classes).float()
            parts.append(normalize_2nd_moment(self.embed(one_hot)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            with torch.no_grad():
                mean = x.detach().float().mean(dim=0)  # float32 under autocast too
                self.w_avg.copy_(mean.lerp(self.w_avg, self.w_avg_beta))
        return x

    def truncate(self, ws: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
        """ws (B, num_ws, w_dim) pulled towards w_avg: w_avg + psi (w - w_avg) on the first
        `cutoff` layers (all when None); psi=0 gives w_avg, psi=1 leaves ws as they are."""
        cutoff = ws.shape[1] if cutoff is None else cutoff
        layer = torch.arange(ws.shape[1], device=ws.device).view(1, -1, 1)
        pulled = self.w_avg.to(ws.dtype).lerp(ws, psi)
        return torch.where(layer < cutoff, pulled, ws)

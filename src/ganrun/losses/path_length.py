"""StyleGAN2's path length regularisation (Karras et al. 2020, Sec. 3.2), a G regulariser.

For w ~ the mapping of z and a random image-space direction u (N(0, 1) / sqrt(H W)), the
Jacobian-vector length ||J_w^T u|| should be the same everywhere: G is pushed towards a
conformal map, which makes w-space smoother and images better. The penalty is
(||J_w^T u|| - a)^2 with `a` the running mean of the lengths (decay 0.01), state the run
checkpoints (pl_mean).

As NVlabs: every 4 G steps with weight 2 (the method multiplies by `every`), on half of the
step's latents (batch_shrink 2), with the styles style-mixed as in G's ordinary forward.
The generator must expose `styles(z, y)` (z -> per-layer w) and `synthesis(ws)`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.losses.regularisers import GeneratorRegulariser


def bound_labels(G: Any) -> Tensor | None:
    """The class labels the method bound into G (functools.partial(net, y=labels)), if any."""
    return G.keywords.get("y") if isinstance(G, functools.partial) else None


def path_lengths(
    net: nn.Module, z: Tensor, y: Tensor | None, grad_scale: Tensor | None = None
) -> Tensor:
    """||J_w^T u||_2 per sample (averaged over the style layers, as NVlabs), kept in the graph.

    grad_scale (fp16 runs): the inner gradient is taken of the scaled sum, then unscaled in
    float32, as the penalties on D do (see ganrun.losses.penalties.input_gradient).
    """
    ws = net.styles(z, y)
    img = net.synthesis(ws)
    u = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    out = (img * u).float().sum()
    if grad_scale is not None:
        out = out * grad_scale
    (grad,) = torch.autograd.grad(out, ws, create_graph=True)
    grad = grad.float() if grad_scale is None else grad.float() / grad_scale
    return grad.square().sum(dim=2).mean(dim=1).sqrt()


class PathLengthRegulariser(GeneratorRegulariser):
    """weight * E[(||J_w^T u|| - pl_mean)^2]; pl_mean moves towards the batch mean by `decay`."""

    def __init__(
        self, weight: float = 2.0, every: int = 4, decay: float = 0.01, batch_shrink: int = 2
    ) -> None:
        super().__init__(weight, every)
        if batch_shrink < 1 or not 0.0 <= decay <= 1.0:
            raise GanrunError(
                f"path length regulariser: batch_shrink={batch_shrink} must be >= 1 and "
                f"decay={decay} in [0, 1] (StyleGAN2: batch_shrink=2, decay=0.01)."
            )
        self.decay = decay
        self.batch_shrink = batch_shrink
        self.pl_mean = torch.zeros(())

    def __call__(
        self, G: nn.Module, net: nn.Module, z: Tensor, grad_scale: Tensor | None = None
    ) -> Tensor:
        if not (hasattr(net, "styles") and hasattr(net, "synthesis")):
            raise GanrunError(
                f"the path length regulariser needs a style-based generator (styles() and "
                f"synthesis()); {type(net).__name__} has none. Use model=stylegan2, or drop "
                f"method.g_regularisers.<name> with PathLengthRegulariser."
            )
        n = max(1, z.shape[0] // self.batch_shrink)
        y = bound_labels(G)
        lengths = path_lengths(net, z[:n], None if y is None else y[:n], grad_scale)
        # as NVlabs: the penalty sees the updated mean (with its small gradient), the state
        # keeps it detached
        mean = self.pl_mean.to(lengths.device).lerp(lengths.mean(), self.decay)
        self.pl_mean = mean.detach()
        return (lengths - mean).square().mean()

    def state_dict(self) -> dict[str, Tensor]:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.pl_mean = state["pl_mean"].clone()

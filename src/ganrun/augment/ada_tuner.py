"""ADA's adaptive augmentation probability p (Karras et al. 2020, section 3).

D overfitting shows as D growing sure of the (augmented) reals: r_t = E[sign(D(real))] rises
towards 1. Every `interval` D steps, p moves one step towards keeping r_t at `target`:

    p <- clamp(p + sign(r_t - target) * images / (kimg * 1000), 0, p_max)

where `images` is the number of real logits seen in the interval (batch x interval, summed
over micro-batches and DDP ranks), so p can cross 0 -> 1 in `kimg` thousand images. The cap
p_max is not in the paper: without one p ran to 21.8 in stylegan2-ada-pytorch #175.

p and r_t are buffers, the running sums and the D steps since the last adjustment are extra
state: all of it is in the state_dict (checkpointed by ganrun.augment.state), so a resume
continues the same p trace bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

Logs = dict[str, Tensor]


class AdaptiveP(nn.Module):
    """p and the sign statistics it follows; `target=None` keeps p fixed (still logging r_t)."""

    def __init__(
        self,
        p: float = 0.0,
        target: float | None = 0.6,
        interval: int = 4,
        kimg: float = 500.0,
        p_max: float = 0.8,
    ) -> None:
        super().__init__()
        self.target, self.interval, self.kimg, self.p_max = target, interval, kimg, p_max
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.tensor(0.0))  # the current interval's mean sign
        # this rank's sums since the last adjustment: extra state, not buffers, because DDP
        # overwrites buffers with rank 0's at every forward (p and r_t agree across ranks)
        self.sums = torch.zeros(2)  # (sum of signs, number of logits)
        self.steps = 0  # D steps since the last adjustment (a Python int: no device sync)

    def get_extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps, "sums": self.sums.clone()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.steps, self.sums = int(state["steps"]), state["sums"].clone()

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> Logs:
        """One D step's logits on (augmented) reals: accumulate, adjust p when an interval is
        complete; returns {"aug/p", "aug/rt"} (r_t over the interval so far)."""
        signs = torch.sign(real_logits.detach().float()).sum()
        count = torch.tensor(float(real_logits.numel()), device=signs.device)
        self.sums = self.sums.to(signs.device) + torch.stack([signs, count])
        self.steps += 1
        if self.steps < self.interval:
            self.rt.copy_(self.sums[0] / self.sums[1])
            return {"aug/p": self.p.clone(), "aug/rt": self.rt.clone()}
        totals = self.sums.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)  # every rank steps p the same way
        self.rt.copy_(totals[0] / totals[1])
        if self.target is not None:
            step = torch.sign(self.rt - self.target) * totals[1] / (self.kimg * 1000)
            self.p.copy_((self.p + step).clamp(0.0, self.p_max))
        self.sums = torch.zeros_like(self.sums)
        self.steps = 0
        return {"aug/p": self.p.clone(), "aug/rt": self.rt.clone()}

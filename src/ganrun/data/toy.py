"""2-D Gaussian mixtures for the mode-collapse benchmarks, generated on the fly.

ring8: 8 modes on a circle of radius 1, std 0.01. grid25: modes on {-4,-2,0,2,4}^2,
std 0.05. Each batch is drawn from its own seeded generator, so batch k is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from ganrun.data.base import Batch, mixed_seed, to_device
from ganrun.evaluation.metrics.modes import mode_metrics


class GaussianMixture2D:
    """Equal-weight isotropic Gaussians at `means` (K, 2) with one shared `std`."""

    shape: tuple[int, ...] = (2,)
    num_classes: int | None = None

    def __init__(self, means: Tensor, std: float) -> None:
        self.means = means.float()
        self.std = std

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        modes = torch.randint(len(self.means), (n,), generator=generator)
        return self.means[modes] + self.std * torch.randn(n, 2, generator=generator)

    def batches(
        self, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
    ) -> Iterator[Batch]:
        k = start
        while True:
            gen = torch.Generator().manual_seed(mixed_seed(seed, k))
            yield to_device(self.sample(batch_size, gen), device), None  # non-blocking on CUDA
            k += 1

    def preview(self, n: int) -> Tensor:
        return self.sample(n, torch.Generator().manual_seed(0))

    def evaluate(self, points: Tensor) -> dict[str, float]:
        """Mode-collapse metrics of generated `points` (n, 2): modes, hq_pct, reverse_kl."""
        return mode_metrics(points, self.means, self.std)


class Ring(GaussianMixture2D):
    """`n_modes` Gaussians evenly spaced on a circle of `radius`."""

    def __init__(self, n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> None:
        angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
        super().__init__(radius * torch.stack([angles.cos(), angles.sin()], dim=1), std)


class Grid(GaussianMixture2D):
    """side x side Gaussians on a square grid centred at 0 with `spacing` between modes."""

    def __init__(self, side: int = 5, spacing: float = 2.0, std: float = 0.05) -> None:
        ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        super().__init__(torch.stack([gx.flatten(), gy.flatten()], dim=1), std)

"""What a method is, and the run facts every method is built from.

A method (the `method` config group, `_target_` with `_partial_: true`) is called with a
`RunSpec` and then:

- `build_players()` -> dict of named `Player`s (networks, optimizers, grad scalers, EMA copies);
- `step(state, batches, step)` runs one training step, all its phases (D steps, G step,
  regularisers, accumulation, AMP) and returns its logs (tensors; read back on log steps);
- `sample_inputs(n, seed)` and `sample(state, inputs)`: what a sample grid or an evaluation
  shows, from fixed inputs;
- `penalties()`: its weighted penalties and regularisers by name (for schedules);
- `state_dict()` / `load_state_dict()`: its own state beyond the players (ADA's p, pools);
- `batches_per_step`, `images_per_step`, `reals_per_step`: how much data a step takes.

The loop (training/loop.py) only calls these; it never knows how many networks there are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from torch import Tensor

from ganrun.training.players import Player
from ganrun.training.state import TrainState

Logs = dict[str, Tensor]
Batches = Iterator[tuple[Tensor, Tensor | None]]


@dataclass(frozen=True)
class RunSpec:
    """The facts a method is built from: the resolved config and what the data decide."""

    cfg: DictConfig
    data_shape: tuple[int, ...]
    num_classes: int | None
    device: torch.device
    world_size: int = 1  # processes training together (DDP)
    # translation data: the source images' shape (None: data_shape) and the dataset itself,
    # whose fixed test images the sample grids show (None when rebuilt from a checkpoint)
    source_shape: tuple[int, ...] | None = None
    data: Any = None


class Method(Protocol):
    batches_per_step: int  # batches drawn from the data per step
    images_per_step: int  # images the generator trains on per step, all processes (EMA, kimg)
    reals_per_step: int  # real images per step, all processes (perf/img_per_s)

    def build_players(self) -> dict[str, Player]: ...
    def step(self, state: TrainState, batches: Batches, step: int) -> Logs: ...
    def sample_inputs(self, n: int, seed: int) -> Any: ...
    def sample(self, state: TrainState, inputs: Any, batch_size: int = 1024) -> Tensor: ...
    def penalties(self) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

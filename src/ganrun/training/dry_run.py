"""One training step on 2 samples, on models of their own, before the run folder is made.

Values can each be in range and still not fit together: a width that leaves no channels,
a depth the resolution cannot hold, a generator whose images the discriminator cannot
take. Those fail inside torch, in the first step, after the run folder is written. The dry
step meets them up front: it builds the method's players afresh from the config and runs
the method's own step (every phase: D step with its penalties, G step with its
regularisers, forward and backward) on a batch of 2, then drops them.

It changes nothing the run uses: the real players are not touched, and every random
stream (torch, CUDA, Python, NumPy) is restored afterwards (isolated_rng), so a run trains
exactly as it would without it.
"""

from __future__ import annotations

import itertools
import traceback
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganrun.build import build_method, build_state
from ganrun.errors import GanrunError, first_line
from ganrun.sampling.generate import class_labels
from ganrun.training.players import Player
from ganrun.training.rng import isolated_rng

DRY_BATCH = 2  # the fewest samples BatchNorm trains on


def dry_step(cfg: DictConfig, data: Any, device: torch.device) -> None:
    """Build the players from `cfg` and run one step of the method on 2 samples of `data`.

    Raises GanrunError naming the model keys and torch's error when the models do not fit
    each other or the data (a RuntimeError or ValueError from a layer).
    """
    # one step of one batch: batch_size, n_critic and accumulate only repeat it
    dry = OmegaConf.merge(
        cfg, {"trainer": {"batch_size": DRY_BATCH, "n_critic": 1, "accumulate": 1}}
    )
    with isolated_rng():
        source_shape = getattr(data, "source_shape", None)  # translation data only
        method = build_method(
            dry, data.shape, device, data.num_classes, source_shape=source_shape, data=data
        )
        state = build_state(dry, data.shape, device, data.num_classes, method)
        try:
            method.step(state, itertools.repeat(_batch(data, device)), 0)
        except (RuntimeError, ValueError) as err:
            raise GanrunError(_message(err, state.players, data.shape)) from None


def _batch(data: Any, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """2 real samples (the first ones, repeated if the data has one) and classes 0, 1: read
    without the run's batch order or random streams. Translation data (source_shape): its
    first batch of 2, (a, b) or (x, domain), a pure function of the seed 0."""
    if hasattr(data, "source_shape"):
        return next(iter(data.batches(DRY_BATCH, 0, 0, device)))
    real = data.preview(DRY_BATCH)
    real = real[torch.arange(DRY_BATCH) % len(real)].to(device)
    labels = class_labels(DRY_BATCH, data.num_classes) if data.num_classes else None
    return real, None if labels is None else labels.to(device)


def _message(err: BaseException, players: dict[str, Player], shape: tuple[int, ...]) -> str:
    player = _failing_player(err, players)
    where = f" in {player}'s network" if player else ""
    return (
        f"model.generator / model.discriminator: one training step on {DRY_BATCH} samples of "
        f"shape {tuple(shape)} failed{where} before the run started: {first_line(err).rstrip('.')}. "
        f"Check the model's sizes (model.z_dim and the keys under model.generator and "
        f"model.discriminator) against the data (`ganrun train --cfg job` prints them)."
    )


def _failing_player(err: BaseException, players: dict[str, Player]) -> str | None:
    """The player whose module was running when `err` was raised (innermost frame wins)."""
    owner = {id(m): name for name, p in players.items() for m in p.net.modules()}
    found = None
    for frame, _ in traceback.walk_tb(err.__traceback__):
        module = frame.f_locals.get("self")
        if isinstance(module, nn.Module) and id(module) in owner:
            found = owner[id(module)]
    return found

"""Every random stream of a run (torch, CUDA, Python, NumPy): saved, restored, isolated."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(state), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


@contextmanager
def isolated_rng() -> Iterator[None]:
    """Run a block without touching the run's random streams (torch, CUDA, Python, NumPy).

    Evaluation builds networks (random init before their weights load) and may draw random
    subsets; inside this block none of that shifts the training noise, so a run with
    evaluation on trains exactly like one with it off, and resume stays bit-exact.
    """
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)

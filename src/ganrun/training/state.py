"""Training state, and checkpoints as plain dicts that load with weights_only=True.

A checkpoint holds the unwrapped state_dicts, both optimizers and grad scalers, the step,
every RNG state, the best metric, the resolved config and the ganrun version: enough to
continue the run bit for bit, or to rebuild the generator with nothing else at hand.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganrun import __version__
from ganrun.artifacts import atomic_write
from ganrun.errors import GanrunError

FORMAT = "ganrun.checkpoint/1"


@dataclass
class TrainState:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    step: int = 0
    best: dict[str, Any] | None = None  # {"metric", "value", "step", "features"} of best.pt

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": unwrap(self.G).state_dict(),
            "D": unwrap(self.D).state_dict(),
            "G_ema": unwrap(self.G_ema).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "step": self.step,
            "best": self.best,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        for name in ("G", "D", "G_ema"):
            unwrap(getattr(self, name)).load_state_dict(ckpt[name])
        for name in ("opt_g", "opt_d", "scaler_g", "scaler_d"):
            getattr(self, name).load_state_dict(ckpt[name])
        self.step, self.best = int(ckpt["step"]), ckpt["best"]


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DDP / augmentation wrappers, however nested
    (DDP around an augmented D), so checkpoints load anywhere."""
    inner = getattr(model, "_orig_mod", None)
    if inner is None:
        inner = getattr(model, "module", None)
    return unwrap(inner) if isinstance(inner, nn.Module) else model


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


def checkpoint_payload(state: TrainState, config: dict, data: dict) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": __version__,
        **state.state_dict(),
        "rng": rng_state(),
        "config": config,
        "data": data,  # runtime facts the config does not hold: sample shape, classes
    }


def save_checkpoint(payload: dict[str, Any], paths: list[Path]) -> None:
    """Serialise once, write each path atomically."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    for path in paths:
        atomic_write(path, buf.getvalue())


def resolve_checkpoint(path: str | Path, key: str) -> Path:
    """A checkpoint file, or a run folder's checkpoints/last.pt; a clear error otherwise."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt"
    if not p.is_file():
        raise GanrunError(
            f"{key}={path}: no such checkpoint. Pass a .pt file written by `ganrun train` "
            f"(e.g. outputs/<date>/<time>/checkpoints/last.pt) or a run folder that has one."
        )
    return p


def run_folder_of(checkpoint: Path) -> Path:
    """outputs/<run>/checkpoints/x.pt -> outputs/<run>."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def load_checkpoint(path: Path, key: str = "ckpt") -> dict[str, Any]:
    """Load safely (no code execution) and check it is a ganrun checkpoint."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same answer
        raise GanrunError(
            f"{key}={path} is not a readable ganrun checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'unreadable'}). Pass a .pt file "
            f"written by `ganrun train`."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise GanrunError(
            f"{key}={path} is a PyTorch file but not a ganrun checkpoint (no "
            f"format={FORMAT!r} entry). Pass a .pt file written by `ganrun train`."
        )
    return ckpt

"""Checkpoints: plain dicts of state_dicts and primitives that load with weights_only=True.

A checkpoint holds every player (network, EMA copy, optimizer, grad scaler), the method's and
the schedules' state, the step, every RNG state, the best metric, the resolved config and
the ganrun version: enough to continue the run bit for bit, or to rebuild the generator with
nothing else at hand. Files in the older format (ganrun.checkpoint/1) are upgraded on load.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch

from ganrun import __version__
from ganrun.atomic_io import atomic_write
from ganrun.errors import GanrunError
from ganrun.training.checkpoint_v1 import FORMAT_V1, upgrade_v1
from ganrun.training.rng import rng_state
from ganrun.training.state import TrainState

FORMAT = "ganrun.checkpoint/2"
PERIODIC_NAME = re.compile(r"^step_(\d+)\.pt$")  # step_0001000.pt: trainer.ckpt_every


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


def prune_checkpoints(folder: Path, keep_last: int) -> list[Path]:
    """trainer.keep_last: delete all but the newest `keep_last` step_<N>.pt (0 keeps all).

    Newest by the step in the name, not the file time (a copied folder keeps its order) nor
    the name's order (step_10000000.pt sorts before step_9999999.pt); last.pt, best.pt and
    any other file are never touched. Returns the removed paths, oldest first."""
    if keep_last < 0:
        raise ValueError(f"keep_last={keep_last} must be >= 0 (0 keeps all)")
    if keep_last == 0 or not folder.is_dir():
        return []
    periodic = sorted(
        (int(m[1]), p) for p in folder.iterdir() if (m := PERIODIC_NAME.match(p.name))
    )
    removed = [p for _, p in periodic[: max(len(periodic) - keep_last, 0)]]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


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
    """Load safely (no code execution), check it is a ganrun checkpoint, upgrade old formats."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same answer
        raise GanrunError(
            f"{key}={path} is not a readable ganrun checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'unreadable'}). Pass a .pt file "
            f"written by `ganrun train`."
        ) from None
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt == FORMAT_V1:
        return upgrade_v1(ckpt, FORMAT)
    if fmt != FORMAT:
        raise GanrunError(
            f"{key}={path} is a PyTorch file but not a ganrun checkpoint (no "
            f"format={FORMAT!r} entry). Pass a .pt file written by `ganrun train`."
        )
    return ckpt

"""Which config a resumed run uses: the checkpoint's, plus the trainer keys given now."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganrun.errors import GanrunError

# keys a resumed run may change: length, cadences, device; where it logs (logger=wandb, logger.*)
CHANGEABLE = ("trainer.", "logger")


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def unchanged(saved: DictConfig, composed: DictConfig, key: str) -> bool:
    """The override gives `key` the value it already has in the checkpoint (e.g. a requeued
    sweep job's own overrides): nothing about the run changes."""
    plain = functools.partial(OmegaConf.to_container, resolve=True, enum_to_str=True)
    old, new = OmegaConf.select(saved, key), OmegaConf.select(composed, key)
    as_data = [plain(v) if OmegaConf.is_config(v) else v for v in (old, new)]
    return as_data[0] == as_data[1]


def resumed_config(saved: dict, composed: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The saved config with `trainer.*` and `logger` overrides applied; others are an error
    unless they repeat the saved value.

    A resumed run continues the same experiment, so model, loss, data, optimizer and seed
    come from the checkpoint; changing them would silently make a different run.
    """
    cfg = OmegaConf.create(saved)
    for override in overrides:
        key = override_key(override)
        if key == "resume" or key.startswith("hydra."):
            continue
        if not key.startswith(CHANGEABLE) and not unchanged(cfg, composed, key):
            raise GanrunError(
                f"resume: the override {override!r} would change the run being resumed. A "
                f"resumed run keeps the config saved in its checkpoint; only trainer.* keys "
                f"(e.g. trainer.max_steps=...) and logger (logger=wandb, logger.*) may change. Drop {key!r}, or start a new run."
            )
        OmegaConf.update(cfg, key, OmegaConf.select(composed, key), merge=False)
    cfg.resume = composed.resume
    return cfg


def requeued_resume(run_dir: Path, env: Mapping[str, str] = os.environ) -> str | None:
    """The run folder to resume when SLURM restarted this job (SLURM_RESTART_COUNT > 0, as
    after submitit's checkpoint-and-requeue) and it already holds checkpoints/last.pt."""
    if int(env.get("SLURM_RESTART_COUNT", "0") or 0) <= 0:
        return None
    return str(run_dir) if (Path(run_dir) / "checkpoints" / "last.pt").is_file() else None

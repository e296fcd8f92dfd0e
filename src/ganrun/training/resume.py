"""Which config a resumed run uses: the checkpoint's, plus the trainer keys given now."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from ganrun.errors import GanrunError

# keys a resumed run may change: length, cadences, device; where it logs (logger=wandb, logger.*)
CHANGEABLE = ("trainer.", "logger")


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resumed_config(saved: dict, composed: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The saved config with `trainer.*` and `logger` overrides applied; others are an error.

    A resumed run continues the same experiment, so model, loss, data, optimizer and seed
    come from the checkpoint; changing them would silently make a different run.
    """
    cfg = OmegaConf.create(saved)
    for override in overrides:
        key = override_key(override)
        if key == "resume" or key.startswith("hydra."):
            continue
        if not key.startswith(CHANGEABLE):
            raise GanrunError(
                f"resume: the override {override!r} would change the run being resumed. A "
                f"resumed run keeps the config saved in its checkpoint; only trainer.* keys "
                f"(e.g. trainer.max_steps=...) and logger (logger=wandb, logger.*) may change. Drop {key!r}, or start a new run."
            )
        OmegaConf.update(cfg, key, OmegaConf.select(composed, key), merge=False)
    cfg.resume = composed.resume
    return cfg

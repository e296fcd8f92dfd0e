"""`ganrun.train([...])`: a training run from Python, as the CLI would make it.

The overrides are the command line's (`["model=dcgan", "loss=hinge"]`); they compose the same
config, are checked by the same preflight (one clear GanrunError, nothing written), train in
a run folder of the same name (outputs/<date>/<time>, or `run_dir`) and leave the same
job.json. Returns the run folder, for ganrun.load and friends.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ganrun.cli.preflight import preflight
from ganrun.config import CONF, register
from ganrun.errors import GanrunError


def default_run_dir(overrides: Sequence[str]) -> Path:
    """hydra.run.dir as the CLI resolves it (outputs/<date>/<time-with-microseconds>)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(CONF), version_base="1.3", job_name="train"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    return Path(str(OmegaConf.select(cfg, "hydra.run.dir")))


def train(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Path:
    """Train the GAN the overrides describe; returns its run folder (resolved)."""
    from ganrun.tracking.jobs import recorded
    from ganrun.training.train import train as run_training

    overrides = list(overrides)
    flags = [o for o in overrides if o.startswith("-") or o.lstrip("+~").startswith("hydra.")]
    if flags:
        raise GanrunError(
            f"ganrun.train: {flags} are not config overrides. Sweeps (-m) and hydra.* keys "
            f"are the CLI's; pass run_dir= for the folder."
        )
    register()
    cfg = preflight(str(CONF), "train", overrides)
    folder = Path(run_dir) if run_dir is not None else default_run_dir(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    with recorded(folder, overrides, keep_failed=False):
        run_training(cfg, folder, overrides)
    return folder.resolve()

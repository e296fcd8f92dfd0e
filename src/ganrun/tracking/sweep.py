"""The end of a multirun: one table of every job, printed and saved in the sweep folder.

A Hydra callback (hydra.callbacks.summary in train.yaml), so it runs once in the process that
launched the sweep, whatever the launcher (basic, joblib, SLURM) or sweeper (grid, Optuna):
the jobs themselves may have run elsewhere, so it reads what each wrote in its job folder.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from ganrun.tracking.runs_table import collect_runs, failed, render, write_summary

log = logging.getLogger("ganrun")


def _plot(folder: Path, runs: list) -> None:
    """plots/curves.png and plots/objective.png of the sweep (ganrun.tracking.plots); a
    figure that cannot be drawn is logged, never a reason to fail a finished sweep."""
    from ganrun.tracking.plots import write_sweep_plots

    try:
        log.info("plots: %s", ", ".join(str(p) for p in write_sweep_plots(folder, runs)))
    except Exception as err:  # noqa: BLE001
        log.warning("sweep plots not written: %s", err)


class SweepSummary(Callback):
    """Writes summary.csv + summary.md and prints the table when a multirun ends."""

    def __init__(self, fail_exit_code: int = 1) -> None:
        self.fail_exit_code = fail_exit_code

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        runs = collect_runs(folder) if folder.is_dir() else []
        if not runs:
            return
        title = f"sweep {folder}: {len(runs)} job(s)"
        Console().print(render(runs, title))
        paths = write_summary(runs, folder, title)
        log.info("summary: %s", ", ".join(str(p) for p in paths))
        if OmegaConf.select(config, "trainer.plots", default=False):
            _plot(folder, runs)
        bad = failed(runs)
        if bad and self.fail_exit_code:
            Console(stderr=True).print(
                f"[bold red]{len(bad)} of {len(runs)} job(s) failed:[/] "
                + ", ".join(r.job for r in bad),
                highlight=False,
            )
            # the sweep ran to its end; the exit code tells CI that part of it failed
            sys.exit(self.fail_exit_code)

"""One `log(metrics, step)` API: metrics.jsonl, train.log, the console and an optional backend.

The console shows a rich progress bar (steps, ETA, img/s, the latest losses and eval metrics)
on a terminal and plain log lines elsewhere (CI, SLURM, pipes), so log files stay readable.
A backend (`logger=wandb`) gets the same metrics and the sample grids.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ganrun.atomic_io import atomic_write

log = logging.getLogger("ganrun")

# metrics the progress bar shows (the rest go to train.log and metrics.jsonl)
CONSOLE_PREFIXES = ("loss/", "eval/")
RATE = "perf/img_per_s"


class Backend(Protocol):
    """Where metrics go besides the run folder; made by build.build_backend (rank 0 only)."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def log_image(self, name: str, path: Path, step: int) -> None: ...
    def log_video(self, name: str, path: Path, step: int) -> None: ...  # an mp4 or gif file
    def close(self, exit_code: int = 0) -> None: ...


@dataclass(frozen=True)
class RunLabels:
    """How a backend names a run when the config does not: see run_labels()."""

    name: str  # <model>-<loss>-<dataset>, plus -<job number> in a multirun
    group: str  # the sweep folder in a multirun (all its jobs together), else the name


def _choice(cfg: DictConfig, choices: Any, group: str, target: str) -> str:
    """The option picked for `group` (model=dcgan -> dcgan); without Hydra's record of it,
    the class name of `target` (DCGANGenerator -> dcgan, HingeLoss -> hinge)."""
    picked = choices.get(group) if choices is not None else None
    if picked:
        return str(picked)
    cls = str(OmegaConf.select(cfg, target, default="")).rsplit(".", 1)[-1]
    for suffix in ("Generator", "Loss"):
        cls = cls.removesuffix(suffix)
    return cls.lower() or group


def run_labels(cfg: DictConfig, hydra_cfg: DictConfig | None = None) -> RunLabels:
    """dcgan-ns-digits from the model, loss and dataset choices; a multirun's jobs share the
    sweep folder as their group.

    Hydra's choices describe the command line, so a resumed run (whose config comes from
    its checkpoint) names itself from the classes in its config instead.
    """
    choices = None
    if hydra_cfg is not None and not cfg.get("resume"):
        choices = OmegaConf.select(hydra_cfg, "runtime.choices")
    parts = [
        _choice(cfg, choices, "model", "model.generator._target_"),
        _choice(cfg, choices, "loss", "loss._target_"),
        _choice(cfg, choices, "dataset", "dataset._target_"),
    ]
    name = "-".join(parts)
    mode = OmegaConf.select(hydra_cfg, "mode") if hydra_cfg is not None else None
    if getattr(mode, "name", mode) == "MULTIRUN":
        return RunLabels(f"{name}-{hydra_cfg.job.num}", str(hydra_cfg.sweep.dir))
    return RunLabels(name, name)


def format_metrics(metrics: dict[str, float | None]) -> str:
    """`loss/d 1.386  loss/g 0.6931`; a non-finite value (None in metrics.jsonl) shows as nan."""
    return "  ".join(
        f"{k} {'nan' if v is None else format(v, '.4g')}" for k, v in metrics.items() if k != "step"
    )


def format_eta(seconds: float) -> str:
    """1:02:03 or 2:03 (h:mm:ss or m:ss), for the plain log lines."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Tracker:
    """Writes each logged step as one JSON line and mirrors it to the console and backend.

    The backend belongs to whoever made it (train()), which closes it with the run's exit
    status; close() here only stops the progress bar.
    """

    def __init__(self, run_dir: Path, console: Console, backend: Backend | None = None) -> None:
        self.run_dir = run_dir
        self.console = console
        self.backend = backend
        self.metrics_path = run_dir / "metrics.jsonl"
        self.history: list[dict[str, float]] = []
        self.latest: dict[str, float] = {}  # newest value of every console metric
        self.progress: Progress | None = None
        self._task = None
        self._first, self._total, self._t0 = 0, 0, time.perf_counter()

    def start(self, first_step: int, total: int) -> None:
        self._first, self._total, self._t0 = first_step, total, time.perf_counter()
        if not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[info]}"),
            console=self.console,
        )
        self._task = self.progress.add_task(
            "train", total=total, completed=first_step, info="", rate=""
        )
        self.progress.start()

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self._task, completed=step)

    def eta(self, step: int) -> float | None:
        """Seconds left at the average pace since start(); None before the first step."""
        done = step - self._first
        if done <= 0:
            return None
        return (self._total - step) * (time.perf_counter() - self._t0) / done

    def log(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": step, **{k: _finite(v) for k, v in metrics.items()}}
        self.history.append(row)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.latest.update(
            (k, v) for k, v in row.items() if k.startswith(CONSOLE_PREFIXES) or k == RATE
        )
        if self.progress is not None:
            rate = self.latest.get(RATE)
            shown = {  # losses first, then eval metrics
                k: v for p in CONSOLE_PREFIXES for k, v in self.latest.items() if k.startswith(p)
            }
            self.progress.update(
                self._task,
                info=format_metrics(shown),
                rate="" if rate is None else f"{rate:,.0f} img/s",
            )
        eta = self.eta(step)
        log.info(
            "step %d/%d  %s%s",
            step,
            self._total,
            format_metrics(row),
            "" if eta is None else f"  eta {format_eta(eta)}",
        )
        if self.backend is not None:
            self.backend.log(metrics, step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        if self.backend is not None:
            self.backend.log_image(name, path, step)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _finite(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def truncate_metrics(path: Path, after_step: int) -> None:
    """Drop lines past `after_step`, so a resumed run's metrics.jsonl reads as if uninterrupted."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= after_step]
    if len(kept) != len(lines):
        atomic_write(path, "".join(ln + "\n" for ln in kept).encode())


def setup_logging(run_dir: Path, console: Console) -> list[logging.Handler]:
    """train.log in the run folder (appended on resume) plus the console."""
    file_handler = logging.FileHandler(run_dir / "train.log")
    file_handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    if console.is_terminal:
        console_handler: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        console_handler = logging.StreamHandler(console.file)
        console_handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    handlers = [file_handler, console_handler]
    for h in handlers:
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handlers


def teardown_logging(handlers: list[logging.Handler]) -> None:
    for h in handlers:
        log.removeHandler(h)
        h.close()

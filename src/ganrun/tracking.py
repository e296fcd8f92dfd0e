"""One `log(metrics, step)` API: metrics.jsonl, train.log, the console and an optional backend.

The console shows a rich progress bar on a terminal and plain log lines elsewhere (CI,
SLURM, pipes), so log files stay readable.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Protocol

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

from ganrun.artifacts import atomic_write

log = logging.getLogger("ganrun")


class Backend(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def log_image(self, name: str, path: Path, step: int) -> None: ...
    def close(self) -> None: ...


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "step")


class Tracker:
    """Writes each logged step as one JSON line and mirrors it to the console and backend."""

    def __init__(self, run_dir: Path, console: Console, backend: Backend | None = None) -> None:
        self.run_dir = run_dir
        self.console = console
        self.backend = backend
        self.metrics_path = run_dir / "metrics.jsonl"
        self.history: list[dict[str, float]] = []
        self.progress: Progress | None = None
        self._task = None

    def start(self, first_step: int, total: int) -> None:
        if not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
        )
        self._task = self.progress.add_task("train", total=total, completed=first_step, info="")
        self.progress.start()

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self._task, completed=step)

    def log(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": step, **{k: _finite(v) for k, v in metrics.items()}}
        self.history.append(row)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.progress is not None:
            self.progress.update(self._task, info=format_metrics(row))
        log.info("step %d  %s", step, format_metrics(row))
        if self.backend is not None:
            self.backend.log(metrics, step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        if self.backend is not None:
            self.backend.log_image(name, path, step)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.backend is not None:
            self.backend.close()


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

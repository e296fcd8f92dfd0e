"""One table of runs: every run folder under a folder, one row each, as rich, CSV and Markdown.

Two callers share it: the sweep summary at the end of a multirun (sweep.py) and
`ganrun runs <folder>`, which compares runs or whole sweeps after the fact without training.
A run folder is any folder holding metrics.jsonl or job.json (a job that failed before
logging has only the latter).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from ganrun.errors import GanrunError
from ganrun.tracking.jobs import JOB_FILE, read_record
from ganrun.tracking.objective import BETTER

METRICS_FILE = "metrics.jsonl"
FINAL_KEYS = ("loss/d", "loss/g")  # shown as the value at the last logged step
# evaluation metrics shown as their best value over the run, and which way is better; any
# other eval/* key is shown as its last value
EVAL_DIRECTIONS = {
    "eval/fid": "minimize",
    "eval/kid": "minimize",
    "eval/reverse_kl": "minimize",
    "eval/modes": "maximize",
    "eval/hq_pct": "maximize",
    "eval/is": "maximize",
    "eval/precision": "maximize",
    "eval/recall": "maximize",
}
SUFFIX = {"minimize": "min", "maximize": "max"}  # column name of a best value: "eval/fid min"
SUMMARY_FILES = ("summary.csv", "summary.md")


@dataclass
class RunRow:
    job: str  # the run folder, relative to the folder the table is about
    overrides: list[str]
    status: str  # completed | failed | unknown (no job.json: running, killed, or older runs)
    steps: int | None  # the last logged step
    values: dict[str, float | None] = field(default_factory=dict)  # column name -> value
    objective: dict[str, Any] | None = None  # job.json's objective (metric, value, ...)
    wall_s: float | None = None
    error: str = ""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl as dicts; a half-written last line (a job still running) is skipped."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def metric_columns(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Final losses, then each eval/* metric's best (known direction) or last value."""
    out: dict[str, float | None] = {}
    for key in FINAL_KEYS:
        logged = [r[key] for r in rows if key in r]
        out[key] = logged[-1] if logged else None
    for key in sorted({k for r in rows for k in r if k.startswith("eval/")}):
        finite = [r[key] for r in rows if r.get(key) is not None]
        direction = EVAL_DIRECTIONS.get(key)
        if direction is None:
            out[f"{key} last"] = finite[-1] if finite else None
        else:
            best = BETTER[direction](finite) if finite else None
            out[f"{key} {SUFFIX[direction]}"] = best
    return out


def read_overrides(run_dir: Path, fallback: list[str]) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        return [str(o) for o in OmegaConf.load(path)]
    return fallback


def read_run(root: Path, run_dir: Path) -> RunRow:
    record = read_record(run_dir)
    rows = read_metrics(run_dir)
    job = run_dir.relative_to(root).as_posix()
    return RunRow(
        job=run_dir.name if job == "." else job,
        overrides=read_overrides(run_dir, record.overrides if record else []),
        status=record.status if record else "unknown",
        steps=rows[-1].get("step") if rows else None,
        values=metric_columns(rows),
        objective=record.objective if record else None,
        wall_s=record.wall_s if record else None,
        error=(record.error or "") if record else "",
    )


def _natural(path: Path) -> list[Any]:
    """Sort key: job 10 after job 9, dates in order."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def collect_runs(folder: str | Path) -> list[RunRow]:
    """Every run folder under `folder` (itself included), recursively, in natural order."""
    root = Path(folder)
    if not root.is_dir():
        raise GanrunError(
            f"{folder} is not a folder. Pass a run folder, a sweep folder (multirun/<date>/<time>) "
            f"or a folder holding several, e.g. `ganrun runs outputs`."
        )
    found = {p.parent for name in (METRICS_FILE, JOB_FILE) for p in root.rglob(name)}
    return [read_run(root, d) for d in sorted(found, key=_natural)]


def value_columns(runs: list[RunRow]) -> list[str]:
    """The metric columns any run has, final losses first, in a stable order."""
    keys = {k for r in runs for k in r.values}
    return [k for k in FINAL_KEYS if k in keys] + sorted(keys - set(FINAL_KEYS))


def table_rows(runs: list[RunRow]) -> tuple[list[str], list[list[Any]]]:
    """Header and raw cells (numbers stay numbers): what the CSV, Markdown and rich tables show."""
    metrics = value_columns(runs)
    with_objective = any(r.objective for r in runs)
    header = ["job", "overrides", "status", "steps", *metrics]
    header += ["objective metric", "objective"] if with_objective else []
    header += ["wall s", "error"]
    cells = []
    for r in runs:
        row = [r.job, " ".join(r.overrides), r.status, r.steps, *(r.values.get(k) for k in metrics)]
        if with_objective:
            objective = r.objective or {}
            row += [objective.get("metric"), objective.get("value")]
        cells.append([*row, r.wall_s, r.error])
    return header, cells


def _text(value: Any) -> str:
    """A cell for people: 4 significant digits, blank for missing values."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def render(runs: list[RunRow], title: str) -> Table:
    header, cells = table_rows(runs)
    table = Table(title=title)
    for name in header:
        table.add_column(name, overflow="fold")
    for row in cells:
        style = "red" if row[2] == "failed" else None
        table.add_row(*(_text(v) for v in row), style=style)
    return table


def csv_text(runs: list[RunRow]) -> str:
    header, cells = table_rows(runs)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in cells])
    return buf.getvalue()


def markdown_text(runs: list[RunRow], title: str) -> str:
    header, cells = table_rows(runs)

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    body = [
        line([f"`{c}`" if i == 1 and c else c for i, c in enumerate(map(_text, row))])
        for row in cells
    ]
    return "\n".join([f"# {title}", "", line(header), line(["---"] * len(header)), *body]) + "\n"


def write_summary(runs: list[RunRow], folder: Path, title: str) -> list[Path]:
    """summary.csv and summary.md in `folder` (written atomically); returns their paths."""
    from ganrun.atomic_io import atomic_write  # imports numpy: only when writing

    paths = [folder / name for name in SUMMARY_FILES]
    atomic_write(paths[0], csv_text(runs).encode())
    atomic_write(paths[1], markdown_text(runs, title).encode())
    return paths


def failed(runs: list[RunRow]) -> list[RunRow]:
    return [r for r in runs if r.status == "failed"]


def main(argv: list[str]) -> None:
    """`ganrun runs <folder> [--write]`: the table of every run under a folder; no training."""
    parser = argparse.ArgumentParser(
        prog="ganrun runs",
        description="Print one row per run folder under FOLDER (runs, sweeps, or folders of "
        "either): overrides, status, final losses, best eval metrics, steps, wall time, error.",
    )
    parser.add_argument("folder", help="a run folder, a sweep folder, or a folder holding several")
    parser.add_argument(
        "--write", action="store_true", help="also write summary.csv and summary.md into FOLDER"
    )
    args = parser.parse_args(argv)
    runs = collect_runs(args.folder)
    if not runs:
        raise GanrunError(
            f"no runs under {args.folder}: a run folder holds {METRICS_FILE} or {JOB_FILE}. "
            f"Pass the folder `ganrun train` wrote (outputs/... or multirun/...)."
        )
    console = Console()
    console.print(render(runs, f"{len(runs)} run(s) under {args.folder}"))
    if args.write:
        for path in write_summary(runs, Path(args.folder), f"runs under {args.folder}"):
            console.print(f"wrote {path}")

"""Metric plots of a run or a sweep, from metrics.jsonl alone: `ganrun plot <folder>`.

A run gets <run>/plots/training.png (losses, D's outputs on reals and fakes, penalties),
eval.png (each eval/* metric, its best value marked) and schedules.png (lr/*, aug/*, ema/*),
each only when the run logged such metrics. A sweep gets <sweep>/plots/curves.png (every
job's curves in one figure) and objective.png (the objective per job as bars).

The data (which series, which best point) are computed apart from the drawing, so tests
check the numbers plotted rather than pixels. matplotlib is imported only when drawing (its
import costs about a second), with the Agg canvas on a Figure of its own: no pyplot, no
global state, no display needed.
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganrun.errors import GanrunError
from ganrun.tracking.jobs import JOB_FILE
from ganrun.tracking.objective import BETTER
from ganrun.tracking.runs_table import (
    EVAL_DIRECTIONS,
    METRICS_FILE,
    SUFFIX,
    RunRow,
    collect_runs,
    read_metrics,
)

PLOTS_DIR = "plots"
Series = tuple[list[int], list[float]]  # steps, values (non-finite values left out)


@dataclass(frozen=True)
class Panel:
    """One axes of a figure: the metrics whose names `matches` accepts."""

    title: str
    matches: Callable[[str], bool]


def _prefixed(*prefixes: str) -> Callable[[str], bool]:
    return lambda key: key.startswith(prefixes)


def _penalty(key: str) -> bool:
    """Penalties and regularisers log under their own config name (gp, r1, pl), no prefix."""
    return "/" not in key and key != "step"


# figure name -> its panels; a panel with no matching metric is left out, a figure with none
FIGURES: dict[str, tuple[Panel, ...]] = {
    "training": (
        Panel("losses", _prefixed("loss/", "aux/")),
        Panel("discriminator outputs", _prefixed("d/")),
        Panel("penalties", _penalty),
    ),
    "schedules": (
        Panel("learning rates", _prefixed("lr/")),
        Panel("augmentation", _prefixed("aug/")),
        Panel("EMA", _prefixed("ema/")),
    ),
}
EVAL_PREFIX = "eval/"  # eval.png: one panel per metric (their scales differ)
SWEEP_CURVES = ("loss/d", "loss/g")  # and every eval/* metric: one panel each in curves.png


def series(rows: list[dict[str, Any]], key: str) -> Series:
    """(steps, values) of one metric over the run; steps where it was non-finite are left out."""
    points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) is not None]
    return [s for s, _ in points], [v for _, v in points]


def run_panels(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Series]]]:
    """figure -> panel title -> metric -> series: everything the run plots show."""
    keys = sorted({k for r in rows for k in r if k != "step"})
    out: dict[str, dict[str, dict[str, Series]]] = {}
    for figure, panels in FIGURES.items():
        drawn = {p.title: {k: series(rows, k) for k in keys if p.matches(k)} for p in panels}
        drawn = {title: lines for title, lines in drawn.items() if lines}
        if drawn:
            out[figure] = drawn
    evals = {k: {k: series(rows, k)} for k in keys if k.startswith(EVAL_PREFIX)}
    if evals:
        out["eval"] = evals
    return out


def best_point(points: Series, key: str) -> tuple[int, float] | None:
    """(step, value) of a metric's best value (its known direction), None for other metrics
    or an empty series; the earliest step wins a tie, as the best checkpoint does."""
    direction = EVAL_DIRECTIONS.get(key)
    steps, values = points
    if direction is None or not values:
        return None
    best = BETTER[direction](values)
    return steps[values.index(best)], best


def sweep_panels(root: Path, runs: list[RunRow]) -> dict[str, dict[str, Series]]:
    """metric -> job -> series: the final losses and every eval metric, one line per job."""
    rows = {r.job: read_metrics(root / r.job) for r in runs}
    evals = sorted({k for rs in rows.values() for r in rs for k in r if k.startswith(EVAL_PREFIX)})
    panels = {}
    for key in (*SWEEP_CURVES, *evals):
        lines = {job: series(rs, key) for job, rs in rows.items()}
        lines = {job: s for job, s in lines.items() if s[0]}
        if lines:
            panels[key] = lines
    return panels


def objective_bars(runs: list[RunRow]) -> tuple[str, dict[str, float]] | None:
    """(what is shown, job -> value): each job's objective from job.json; without one, the
    first best-eval column of the runs table. None when no job has either (final losses of
    different objectives are not comparable, so they get no bars)."""
    objective = {r.job: r.objective["value"] for r in runs if r.objective}
    objective = {j: v for j, v in objective.items() if v is not None and math.isfinite(v)}
    if objective:
        metric = next(r.objective["metric"] for r in runs if r.objective)
        return f"objective ({metric})", objective
    for column in (f"{k} {SUFFIX[d]}" for k, d in EVAL_DIRECTIONS.items()):
        values = {r.job: r.values.get(column) for r in runs}
        values = {j: v for j, v in values.items() if v is not None}
        if values:
            return column, values
    return None


def job_labels(runs: list[RunRow]) -> dict[str, str]:
    """job -> "0: loss=hinge": the job and the overrides that set it apart from the others."""
    shared = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    labels = {}
    for r in runs:
        own = " ".join(o for o in r.overrides if o not in shared)
        labels[r.job] = f"{r.job}: {own}" if own else r.job
    return labels


def _figure(n_panels: int, width: float = 5.0, height: float = 3.2) -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; harmless when already chosen
    from matplotlib.figure import Figure

    cols = min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    from ganrun.atomic_io import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write(path, buf.getvalue())
    return path


def _draw_lines(ax: Any, title: str, lines: dict[str, Series], mark_best: bool) -> None:
    for name, (steps, values) in lines.items():
        (line,) = ax.plot(steps, values, label=name, marker="." if len(steps) < 30 else None)
        best = best_point((steps, values), name) if mark_best else None
        if best is not None:
            ax.scatter([best[0]], [best[1]], s=80, marker="*", color=line.get_color(), zorder=3)
            right = best[0] > (steps[0] + steps[-1]) / 2  # keep the label inside the axes
            ax.annotate(
                f"best {best[1]:.4g} @ {best[0]}",
                best,
                textcoords="offset points",
                xytext=(-6 if right else 6, 6),
                ha="right" if right else "left",
                fontsize=8,
            )
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(lines) > 1 or not mark_best:
        ax.legend(fontsize=8)


def write_run_plots(run_dir: Path) -> list[Path]:
    """<run>/plots/<figure>.png for each figure the run's metrics fill; returns their paths."""
    panels = run_panels(read_metrics(run_dir))
    paths = []
    for figure, drawn in panels.items():
        fig, axes = _figure(len(drawn))
        for ax, (title, lines) in zip(axes, drawn.items()):
            _draw_lines(ax, title, lines, mark_best=figure == "eval")
        paths.append(_save(fig, run_dir / PLOTS_DIR / f"{figure}.png"))
    return paths


def write_sweep_plots(folder: Path, runs: list[RunRow]) -> list[Path]:
    """<sweep>/plots/curves.png (every job per metric) and objective.png (bars per job)."""
    paths = []
    panels = sweep_panels(folder, runs)
    labels = job_labels(runs)
    if panels:
        fig, axes = _figure(len(panels))
        for ax, (key, lines) in zip(axes, panels.items()):
            named = {labels[job]: points for job, points in lines.items()}
            _draw_lines(ax, key, named, mark_best=False)
        paths.append(_save(fig, folder / PLOTS_DIR / "curves.png"))
    bars = objective_bars(runs)
    if bars is not None:
        label, values = bars
        fig, (ax, *_) = _figure(1, width=max(5.0, 0.6 * len(values)), height=3.6)
        ax.bar(list(values), list(values.values()), color="tab:blue")
        ax.set_title(f"{label} per job")
        ax.set_ylabel(label)
        ax.set_xlabel("job")
        ax.tick_params(axis="x", labelrotation=45 if len(values) > 8 else 0)
        paths.append(_save(fig, folder / PLOTS_DIR / "objective.png"))
    return paths


def is_run(folder: Path) -> bool:
    """A run folder holds its own metrics.jsonl or job.json; a sweep folder holds runs."""
    return (folder / METRICS_FILE).is_file() or (folder / JOB_FILE).is_file()


def write_plots(folder: str | Path) -> list[Path]:
    """The plots of a run folder, or of a sweep (any folder of runs); GanrunError if neither."""
    folder = Path(folder)
    if folder.is_dir() and is_run(folder):
        return write_run_plots(folder)
    runs = collect_runs(folder)  # explains a folder that does not exist
    if not runs:
        raise GanrunError(
            f"no runs under {folder}: a run folder holds {METRICS_FILE} or {JOB_FILE}. Pass "
            f"the folder `ganrun train` wrote (outputs/<date>/<time> or multirun/<date>/<time>)."
        )
    return write_sweep_plots(folder, runs)


def main(argv: list[str]) -> None:
    """`ganrun plot <run or sweep folder>`: write its plots/ from the files already there."""
    parser = argparse.ArgumentParser(
        prog="ganrun plot",
        description="Write metric plots (PNG) into FOLDER/plots from metrics.jsonl: a run's "
        "losses, D outputs, penalties, eval metrics (best marked) and schedules; a sweep's "
        "curves of every job and its objective per job.",
    )
    parser.add_argument("folder", help="a run folder or a sweep folder")
    args = parser.parse_args(argv)
    paths = write_plots(args.folder)
    if not paths:
        print(f"{args.folder}: no metrics logged yet, no plots written")
    for path in paths:
        print(f"wrote {path}")

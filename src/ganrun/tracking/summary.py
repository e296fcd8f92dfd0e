"""The table `ganrun train` prints at the end of a run."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ganrun.training.state import TrainState

IMAGE_METRICS = ("eval/fid", "eval/kid", "eval/is", "eval/precision", "eval/recall")


def summary_table(
    run_dir: Path,
    state: TrainState,
    wall: float,
    last: dict[str, float],
    features: str | None = None,
) -> Table:
    """The end-of-run summary; image metrics name the extractor that produced them."""
    table = Table(title="ganrun train", show_header=False)
    table.add_row("run folder", str(run_dir))
    table.add_row("steps", str(state.step))
    table.add_row("wall time", f"{wall:.1f} s")
    for key in ("loss/d", "loss/g", "perf/img_per_s", "eval/modes", "eval/hq_pct"):
        if key in last:
            table.add_row(key, f"{last[key]:.4g}")
    for key in IMAGE_METRICS:
        if key in last:
            table.add_row(f"{key} ({features})", f"{last[key]:.4g}")
    if state.best is not None:
        best = state.best
        table.add_row("best.pt", f"{best['metric']} {best['value']:.4g} at step {best['step']}")
    table.add_row("checkpoint", str(run_dir / "checkpoints" / "last.pt"))
    return table

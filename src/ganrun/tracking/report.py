"""`ganrun report <run or sweep folder>`: one self-contained HTML file to read, mail or archive.

Every image and video is embedded as a base64 data URI, so report.html alone shows the whole
run on any machine, offline, with no server. A run's report holds its config, its summary
table, the metric plots, the sample grid at each step and its videos (the time-lapse is
made on the spot when the run folder has none). A sweep's report holds the table of every
job (overrides, status, best metric), the sweep plots and each job's last grid.

Plots come from ganrun.tracking.plots and the tables from runs_table, so the report shows
the same numbers as `ganrun plot` and `ganrun runs`.
"""

from __future__ import annotations

import argparse
import base64
import html
from dataclasses import dataclass
from pathlib import Path

from ganrun.errors import GanrunError
from ganrun.tracking.plots import is_run, write_run_plots, write_sweep_plots
from ganrun.tracking.runs_table import RunRow, collect_runs, table_rows
from ganrun.tracking.runs_table import _text as cell_text

REPORT_FILE = "report.html"
MIME = {".png": "image/png", ".gif": "image/gif", ".mp4": "video/mp4"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .9em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
tr.failed td { color: #b00; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; max-height: 30em; font-size: .85em; }
figure { display: inline-block; margin: .5em; vertical-align: top; }
figcaption { font-size: .85em; text-align: center; }
img.pixels { image-rendering: pixelated; min-width: 256px; }  /* tiny grids enlarged, sharp */
"""


@dataclass(frozen=True)
class Section:
    """One <section> of the report: its id (tests and links find it by that), title, body."""

    id: str
    title: str
    body: str

    def html(self) -> str:
        return (
            f'<section id="{self.id}">\n<h2>{html.escape(self.title)}</h2>\n{self.body}\n</section>'
        )


def data_uri(path: Path) -> str:
    """The file as a data: URI (its type from the suffix)."""
    return f"data:{MIME[path.suffix]};base64,{base64.b64encode(path.read_bytes()).decode()}"


def figure(path: Path, caption: str, pixels: bool = False) -> str:
    """An embedded image with a caption; `pixels` shows a tiny sample grid enlarged, sharp."""
    cls = ' class="pixels"' if pixels else ""
    return (
        f'<figure><img{cls} src="{data_uri(path)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def video_figure(mp4: Path) -> str:
    """The mp4 as a looping <video> (H.264 plays in every current browser; the gif beside it
    in videos/ is left out: it holds the same frames at 10-20 times the size)."""
    return (
        f'<figure><video controls autoplay loop muted playsinline src="{data_uri(mp4)}"></video>'
        f"<figcaption>{html.escape(mp4.name)}</figcaption></figure>"
    )


def table(header: list[str], rows: list[list[object]], status_col: int | None = None) -> str:
    """An HTML table; a row whose status cell says failed is marked."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = []
    for row in rows:
        failed = status_col is not None and row[status_col] == "failed"
        cells = "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row)
        lines.append(f"<tr{' class=failed' if failed else ''}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _config(run_dir: Path) -> str:
    path = run_dir / ".hydra" / "config.yaml"
    text = path.read_text() if path.is_file() else "(no .hydra/config.yaml in this run folder)"
    return f"<pre>{html.escape(text)}</pre>"


def _grids(run_dir: Path) -> list[tuple[int, Path]]:
    from ganrun.sampling.timelapse import step_grids

    return step_grids(run_dir)


def _videos(run_dir: Path) -> list[Path]:
    """The run's videos; a time-lapse of its grids is made first when it has none."""
    from ganrun.sampling.timelapse import TIMELAPSE, write_timelapse
    from ganrun.sampling.video import VIDEOS_DIR

    folder = run_dir / VIDEOS_DIR
    if not (folder / f"{TIMELAPSE}.mp4").is_file() and _grids(run_dir):
        write_timelapse(run_dir, folder)
    return sorted(folder.glob("*.mp4"))


def run_sections(run_dir: Path) -> list[Section]:
    """The sections of a run's report: config, summary, plots, samples, videos."""
    header, cells = table_rows(collect_runs(run_dir) or [])
    plots = write_run_plots(run_dir)
    grids = _grids(run_dir)
    videos = _videos(run_dir)
    return [
        Section("config", "Config", _config(run_dir)),
        Section("summary", "Summary", table(header, cells, status_col=2)),
        Section(
            "plots",
            "Plots",
            "".join(figure(p, p.stem) for p in plots) or "<p>no metrics logged</p>",
        ),
        Section(
            "samples",
            "Sample grid at each step (fixed noise)",
            "".join(figure(p, f"step {s:,}", pixels=True) for s, p in grids)
            or "<p>no sample grids</p>",
        ),
        Section(
            "videos",
            "Videos",
            "".join(video_figure(v) for v in videos) or "<p>no videos</p>",
        ),
    ]


def best_metric(run: RunRow) -> str:
    """A job's objective when it has one, else its first best eval/* column, else ''."""
    if run.objective and run.objective.get("value") is not None:
        return f"{run.objective['metric']} {cell_text(run.objective['value'])}"
    for column, value in run.values.items():
        if column.startswith("eval/") and value is not None and not column.endswith(" last"):
            return f"{column} {cell_text(value)}"
    return ""


def sweep_sections(folder: Path, runs: list[RunRow]) -> list[Section]:
    """The sections of a sweep's report: jobs, summary table, plots, each job's last grid."""
    jobs = [[r.job, " ".join(r.overrides), r.status, best_metric(r), r.steps] for r in runs]
    header, cells = table_rows(runs)
    plots = write_sweep_plots(folder, runs)
    last_grids = []
    for r in runs:
        grids = _grids(folder / r.job)
        if grids:
            step, path = grids[-1]
            last_grids.append(figure(path, f"job {r.job} ({r.status}), step {step:,}", True))
    return [
        Section(
            "jobs",
            f"Jobs ({len(runs)})",
            table(["job", "overrides", "status", "best metric", "steps"], jobs, status_col=2),
        ),
        Section("summary", "Summary", table(header, cells, status_col=2)),
        Section(
            "plots",
            "Plots",
            "".join(figure(p, p.stem) for p in plots) or "<p>no metrics logged</p>",
        ),
        Section(
            "samples",
            "Last sample grid of each job",
            "".join(last_grids) or "<p>no sample grids</p>",
        ),
    ]


def render(title: str, sections: list[Section]) -> str:
    nav = " · ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1><nav>{nav}</nav>\n{body}\n</body></html>\n"
    )


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """report.html of a run or a sweep folder (default inside it); returns its path."""
    from ganrun.atomic_io import atomic_write

    folder = Path(folder)
    if folder.is_dir() and is_run(folder):
        title, sections = f"ganrun run {folder}", run_sections(folder)
    else:
        runs = collect_runs(folder)  # explains a folder that does not exist
        if not runs:
            raise GanrunError(
                f"no runs under {folder}: a run folder holds metrics.jsonl or job.json. Pass the "
                f"folder `ganrun train` wrote (outputs/<date>/<time> or multirun/<date>/<time>)."
            )
        title, sections = f"ganrun sweep {folder}", sweep_sections(folder, runs)
    path = Path(out) if out else folder / REPORT_FILE
    atomic_write(path, render(title, sections).encode())
    return path


def main(argv: list[str]) -> None:
    """`ganrun report <run or sweep folder> [--out FILE]`."""
    parser = argparse.ArgumentParser(
        prog="ganrun report",
        description="Write one self-contained HTML report (images and videos embedded) of a "
        "run (config, summary, plots, sample grid at each step, videos) or of a sweep (every "
        "job with its overrides, status and best metric, plots, each job's last grid).",
    )
    parser.add_argument("folder", help="a run folder or a sweep folder")
    parser.add_argument("--out", help=f"the HTML file to write (default FOLDER/{REPORT_FILE})")
    args = parser.parse_args(argv)
    print(f"wrote {write_report(args.folder, args.out)}")

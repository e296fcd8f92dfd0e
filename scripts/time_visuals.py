"""How long the pictures of a run take: `ganrun plot`, `video` (both kinds) and `report`.

    .venv/bin/python scripts/time_visuals.py RUN_FOLDER [--repeat 3]

Each command runs as a user would type it, in a fresh process (Python start-up and imports
included), on a copy of RUN_FOLDER (the original is left as it was). Wall time depends on
what else the machine is doing; CPU time (user + system of the child) much less, so both are
printed, as the median over --repeat runs. The report is timed on a folder that already has
its plots and videos (what a finished run leaves) and on one without (it draws them).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of `python -m ganrun *args`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ganrun", *args], check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (checkpoints/last.pt)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("report.html"))
        bare = Path(tmp) / "bare"  # no plots/, no videos/: the report draws them
        shutil.copytree(run, bare, ignore=shutil.ignore_patterns("plots", "videos"))
        cases = {
            "ganrun plot": ["plot", str(run)],
            "ganrun video kind=timelapse": ["video", f"run={run}", "kind=timelapse"],
            "ganrun video kind=interpolate (n=16, 4 x 24 frames)": [
                "video",
                f"ckpt={run}",
                "kind=interpolate",
            ],
            "ganrun report (plots, videos there)": ["report", str(run)],
            "ganrun report (draws plots, time-lapse)": ["report", str(bare)],
        }
        print(f"run folder {args.run}; median of {args.repeat}")
        print(f"{'command':<52} {'wall s':>8} {'CPU s':>8}")
        for name, command in cases.items():
            results = []
            for _ in range(args.repeat):
                if "draws" in name:
                    shutil.rmtree(bare / "plots", ignore_errors=True)
                    shutil.rmtree(bare / "videos", ignore_errors=True)
                results.append(timed(command))
            wall = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            print(f"{name:<52} {wall:>8.2f} {cpu:>8.2f}")
        size = (run / "report.html").stat().st_size / 1e6
        print(f"report.html: {size:.2f} MB")
        empty = timed(["--help"])  # start-up alone, for scale
        print(f"{'ganrun --help (start-up alone)':<52} {empty[0]:>8.2f} {empty[1]:>8.2f}")


if __name__ == "__main__":
    main()

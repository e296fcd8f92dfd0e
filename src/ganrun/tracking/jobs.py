"""job.json: what became of one `ganrun train` job (status, error, wall time, overrides, objective).

A sweep goes on past a failed job, so the failure is written down where the sweep summary
and `ganrun runs` look for it: in the job's own folder, beside whatever the job wrote
before it failed. A completed run gets the same record, so a table of runs can show each
one's wall time and objective without parsing logs.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ganrun.errors import GanrunError, RunInterrupted, first_line

JOB_FILE = "job.json"


@dataclass
class JobRecord:
    status: str  # completed | failed | interrupted (a signal: last.pt saved, resumable)
    overrides: list[str] = field(default_factory=list)  # the job's command-line overrides
    wall_s: float = 0.0  # seconds in train() (summed over resumed legs)
    error: str | None = None  # first line of the error of a failed job
    traceback: str | None = None  # the full traceback of an unexpected (non-GanrunError) error
    objective: dict[str, Any] | None = None  # metric, direction, reduce, value (when configured)
    threads: int | None = None  # torch CPU threads (joblib gives each worker cores // n_jobs)


def write_record(run_dir: Path, record: JobRecord) -> None:
    from ganrun.atomic_io import atomic_write  # imports numpy: only when a job ends

    atomic_write(run_dir / JOB_FILE, (json.dumps(asdict(record), indent=2) + "\n").encode())


def read_record(run_dir: Path) -> JobRecord | None:
    """The folder's job record, or None when it has none (or an unreadable one)."""
    path = run_dir / JOB_FILE
    try:
        data = json.loads(path.read_text())
        return JobRecord(**{k: data[k] for k in JobRecord.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError):
        return None


@contextmanager
def recorded(run_dir: str | Path, overrides: list[str], keep_failed: bool) -> Iterator[JobRecord]:
    """Time the block and write its job.json: completed, or failed with the error's first line.

    The error is re-raised: the caller decides between exit code 2 (a single run) and
    carrying on (a sweep). A folder that held files before the block (a resumed run, or an
    old run a fresh one refused to overwrite) gets no failure record, so nothing already
    written changes; an empty folder gets one only with `keep_failed` (a sweep's job folder),
    so a single run that failed up front can still be removed.
    """
    run_dir = Path(run_dir)
    fresh = not run_dir.is_dir() or not any(run_dir.iterdir())
    previous = None if fresh else read_record(run_dir)
    record = JobRecord(status="completed", overrides=list(overrides))
    start = time.perf_counter()
    try:
        yield record
    except RunInterrupted as err:
        record.status, record.error = "interrupted", first_line(err)
        record.wall_s = earlier_wall(previous) + time.perf_counter() - start
        write_record(run_dir, record)
        raise
    except Exception as err:
        record.status, record.error = "failed", first_line(err)
        if not isinstance(err, GanrunError):
            record.traceback = traceback.format_exc()
        record.wall_s = time.perf_counter() - start
        if fresh and (keep_failed or (run_dir.is_dir() and any(run_dir.iterdir()))):
            with contextlib.suppress(GanrunError):  # a full disk: the job's own error wins
                write_record(run_dir, record)
        raise
    record.wall_s = earlier_wall(previous) + time.perf_counter() - start
    write_record(run_dir, record)


def earlier_wall(previous: JobRecord | None) -> float:
    """A resumed run continues the wall time of the legs before it (completed or interrupted)."""
    if previous is None or previous.status not in ("completed", "interrupted"):
        return 0.0
    return previous.wall_s

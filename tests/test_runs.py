"""The pieces under sweeps, in process: the objective, job.json records, the runs table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from ganrun.cli.preflight import preflight
from ganrun.config import CONF
from ganrun.errors import GanrunError
from ganrun.tracking.jobs import JOB_FILE, JobRecord, read_record, recorded, write_record
from ganrun.tracking.objective import Objective, check_evaluated, objective_value
from ganrun.tracking.runs_table import collect_runs, csv_text, markdown_text, render

ROWS = [
    {"step": 1, "loss/d": 1.5, "loss/g": 0.7},
    {"step": 2, "loss/d": 1.4, "loss/g": 0.8, "eval/fid": 30.0, "eval/modes": 6.0},
    {"step": 3, "loss/d": 1.2, "loss/g": 0.9, "eval/fid": None, "eval/modes": None},
    {"step": 4, "loss/d": 1.1, "loss/g": 1.0, "eval/fid": 25.0, "eval/modes": 5.0},
    {"step": 5, "loss/d": 1.3, "loss/g": 1.1, "eval/fid": 27.5, "eval/modes": 7.0},
]


@pytest.mark.parametrize(
    ("metric", "direction", "reduce", "expected"),
    [
        ("eval/fid", "minimize", "best", 25.0),
        ("eval/fid", "minimize", "last", 27.5),
        ("eval/modes", "maximize", "best", 7.0),
        ("eval/modes", "maximize", "last", 7.0),
        ("loss/g", "maximize", "best", 1.1),
        ("loss/d", "minimize", "best", 1.1),
        ("loss/d", "maximize", "last", 1.3),
    ],
)
def test_objective_value(metric, direction, reduce, expected):
    """Best over the run (min or max) or the last logged value; non-finite (null) steps skipped."""
    value = objective_value(Objective(metric, direction, reduce), ROWS)
    assert value == pytest.approx(expected, rel=1e-12)


def test_objective_missing_metric_names_the_key_and_the_logged_ones():
    with pytest.raises(GanrunError) as err:
        objective_value(Objective("eval/kid"), ROWS)
    text = str(err.value)
    assert "objective.metric=eval/kid was never logged" in text
    assert "eval/fid, eval/modes, loss/d, loss/g" in text


def test_objective_never_finite():
    rows = [{"step": 1, "eval/fid": None}, {"step": 2, "eval/fid": None}]
    with pytest.raises(GanrunError, match="objective.metric=eval/fid was never finite"):
        objective_value(Objective("eval/fid"), rows)


def test_eval_objective_needs_evaluations():
    """An eval/* objective with trainer.eval_every=0 fails before training, naming both keys."""
    with pytest.raises(GanrunError) as err:
        check_evaluated(Objective("eval/fid"), 0)
    assert "objective.metric=eval/fid" in str(err.value)
    assert "trainer.eval_every=0" in str(err.value)
    check_evaluated(Objective("eval/fid"), 500)  # evaluations on: fine
    check_evaluated(Objective("loss/g"), 0)  # a training metric needs none
    check_evaluated(None, 0)


def test_objective_from_the_composed_config(make_cfg):
    """objective.* composes through the typed schema; a null metric means no objective."""
    assert Objective.from_config(make_cfg().objective) is None
    cfg = make_cfg("objective.metric=eval/hq_pct", "objective.direction=maximize")
    assert Objective.from_config(cfg.objective) == Objective("eval/hq_pct", "maximize", "best")
    with pytest.raises(GanrunError) as err:  # the CLI's up-front check
        preflight(str(CONF), "train", ["objective.direction=up"])
    assert "objective.direction=up" in str(err.value) and "[minimize, maximize]" in str(err.value)


def test_recorded_completed_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with recorded(run, ["loss=ns"], keep_failed=False) as record:
        record.objective = {"metric": "loss/g", "value": 0.5}
    got = read_record(run)
    assert got.status == "completed" and got.overrides == ["loss=ns"] and got.error is None
    assert got.objective == {"metric": "loss/g", "value": 0.5}
    assert 0 <= got.wall_s < 5


def test_recorded_unexpected_error_keeps_its_traceback(tmp_path):
    run = tmp_path / "job"
    run.mkdir()
    with pytest.raises(RuntimeError), recorded(run, ["a=1"], keep_failed=True):
        raise RuntimeError("boom\nsecond line")
    got = read_record(run)
    assert got.status == "failed"
    assert got.error == "RuntimeError: boom"
    assert "Traceback" in got.traceback and "second line" in got.traceback


def test_recorded_ganrun_error_without_traceback(tmp_path):
    run = tmp_path / "job"
    run.mkdir()
    with pytest.raises(GanrunError), recorded(run, [], keep_failed=True):
        raise GanrunError("trainer.batch_size=9 is too large. Lower it.\nmore")
    got = read_record(run)
    assert (got.status, got.error, got.traceback) == (
        "failed",
        "trainer.batch_size=9 is too large. Lower it.",
        None,
    )


def test_recorded_failure_leaves_a_single_runs_empty_folder_empty(tmp_path):
    """A single run that failed up front writes no record, so the CLI can remove its folder."""
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(GanrunError), recorded(run, [], keep_failed=False):
        raise GanrunError("bad")
    assert list(run.iterdir()) == []


def test_recorded_failure_never_touches_an_existing_run(tmp_path):
    """A fresh run refused on an old run's folder leaves every old file as it was."""
    run = tmp_path / "old"
    run.mkdir()
    write_record(run, JobRecord(status="completed", overrides=["x=1"], wall_s=3.0))
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(GanrunError), recorded(run, ["y=2"], keep_failed=True):
        raise GanrunError("already holds a run")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_recorded_resume_adds_the_earlier_wall_time(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_record(run, JobRecord(status="completed", wall_s=100.0))
    with recorded(run, ["resume=run"], keep_failed=False):
        pass
    assert 100.0 <= read_record(run).wall_s < 105.0


def make_run(folder: Path, rows: list[dict], record: JobRecord | None, overrides=None) -> None:
    folder.mkdir(parents=True)
    if rows:
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if record is not None:
        write_record(folder, record)
    if overrides is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def test_collect_runs_one_row_per_run_folder(tmp_path):
    """Nested folders, natural order, best eval values, a failed job and a run with no record."""
    make_run(
        tmp_path / "sweep" / "10",
        ROWS,
        JobRecord(status="completed", overrides=["seed=10"], wall_s=12.5),
        overrides=["seed=10", "loss=ns"],  # .hydra/overrides.yaml wins (a resume appends to it)
    )
    make_run(
        tmp_path / "sweep" / "2",
        [],
        JobRecord(status="failed", overrides=["seed=2"], wall_s=0.1, error="bad batch"),
    )
    # a run still being written: its last line is half there
    make_run(tmp_path / "old_run", ROWS[:2], None)
    with open(tmp_path / "old_run" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss/d"')
    (tmp_path / "sweep" / "samples").mkdir()  # no run: not listed

    runs = collect_runs(tmp_path)
    assert [r.job for r in runs] == ["old_run", "sweep/2", "sweep/10"]
    old, failed, done = runs
    assert (old.status, old.steps, old.wall_s) == ("unknown", 2, None)
    assert old.values == {"loss/d": 1.4, "loss/g": 0.8, "eval/fid min": 30.0, "eval/modes max": 6.0}
    assert (failed.status, failed.error, failed.overrides, failed.steps) == (
        "failed",
        "bad batch",
        ["seed=2"],
        None,
    )
    assert failed.values == {"loss/d": None, "loss/g": None}
    assert done.overrides == ["seed=10", "loss=ns"]
    assert done.values == {
        "loss/d": 1.3,
        "loss/g": 1.1,
        "eval/fid min": 25.0,
        "eval/modes max": 7.0,
    }
    assert (done.steps, done.wall_s) == (5, 12.5)

    table = list(csv.reader(io.StringIO(csv_text(runs))))
    assert table[0] == [
        "job",
        "overrides",
        "status",
        "steps",
        "loss/d",
        "loss/g",
        "eval/fid min",
        "eval/modes max",
        "wall s",
        "error",
    ]
    assert table[2] == ["sweep/2", "seed=2", "failed", "", "", "", "", "", "0.1", "bad batch"]
    assert table[3][:8] == [
        "sweep/10",
        "seed=10 loss=ns",
        "completed",
        "5",
        "1.3",
        "1.1",
        "25.0",
        "7.0",
    ]
    md = markdown_text(runs, "t").splitlines()
    assert md[0] == "# t" and len(md) == 2 + 2 + 3
    assert md[5].startswith("| sweep/2 | `seed=2` | failed |")
    assert render(runs, "t").row_count == 3


def test_collect_runs_unknown_eval_metric_shows_its_last_value(tmp_path):
    make_run(tmp_path / "r", [{"step": 1, "eval/new": 2.0}, {"step": 2, "eval/new": 1.0}], None)
    (run,) = collect_runs(tmp_path / "r")
    assert run.job == "r"  # the folder itself is the run
    assert run.values["eval/new last"] == 1.0


def test_collect_runs_objective_columns(tmp_path):
    objective = {"metric": "eval/fid", "direction": "minimize", "reduce": "best", "value": 25.0}
    make_run(tmp_path / "a", ROWS, JobRecord(status="completed", objective=objective))
    make_run(tmp_path / "b", [], JobRecord(status="failed", error="e"))
    header, *rows = list(csv.reader(io.StringIO(csv_text(collect_runs(tmp_path)))))
    i = header.index("objective")
    assert header[i - 1] == "objective metric"
    assert (rows[0][i - 1], float(rows[0][i])) == ("eval/fid", 25.0)
    assert rows[1][i] == ""


def test_collect_runs_errors(tmp_path):
    with pytest.raises(GanrunError, match="is not a folder"):
        collect_runs(tmp_path / "missing")
    assert collect_runs(tmp_path) == []
    (tmp_path / JOB_FILE).write_text("{not json")
    assert collect_runs(tmp_path)[0].status == "unknown"  # an unreadable record is no record

"""Metric plots: the series each figure draws (checked as data, not pixels), the run's plots
and time-lapse at the end of training (and sent to W&B), and the sweep figures."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import av
import pytest
from PIL import Image
from test_train import TENSOR_KEYS, assert_bit_equal, load, run

from ganrun.errors import GanrunError
from ganrun.tracking.plots import (
    best_point,
    job_labels,
    objective_bars,
    run_panels,
    sweep_panels,
    write_plots,
)
from ganrun.tracking.run_visuals import RunVisuals
from ganrun.tracking.runs_table import collect_runs

ROWS = [
    {"step": 1, "loss/d": 1.5, "loss/g": 0.7, "d/real": 0.2, "d/fake": -0.1, "gp": 0.3,
     "lr/g": 2e-4, "lr/d": 1e-4, "perf/img_per_s": 99.0},
    {"step": 2, "loss/d": None, "loss/g": 0.8, "d/real": 0.4, "d/fake": -0.3, "gp": 0.2,
     "lr/g": 1e-4, "lr/d": 1e-4, "eval/fid": 40.0, "eval/modes": 3.0, "aug/p": 0.0},
    {"step": 4, "loss/d": 1.1, "loss/g": 0.9, "eval/fid": 30.0, "eval/modes": 3.0,
     "eval/foo": 5.0, "aug/p": 0.05},
    {"step": 6, "eval/fid": 30.0, "eval/modes": 2.0, "eval/foo": 1.0},
]  # fmt: skip


def write_run(folder: Path, rows: list[dict], job: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if job is not None:
        (folder / "job.json").write_text(json.dumps(job))
    return folder


def test_run_panels_hold_the_logged_series():
    """Each figure's panels hold exactly the metrics of their prefix, a non-finite value
    (None) left out; perf/* is not plotted; a panel with no metric is absent."""
    panels = run_panels(ROWS)
    assert panels == {
        "training": {
            "losses": {"loss/d": ([1, 4], [1.5, 1.1]), "loss/g": ([1, 2, 4], [0.7, 0.8, 0.9])},
            "discriminator outputs": {
                "d/fake": ([1, 2], [-0.1, -0.3]),
                "d/real": ([1, 2], [0.2, 0.4]),
            },
            "penalties": {"gp": ([1, 2], [0.3, 0.2])},
        },
        "schedules": {
            "learning rates": {"lr/d": ([1, 2], [1e-4, 1e-4]), "lr/g": ([1, 2], [2e-4, 1e-4])},
            "augmentation": {"aug/p": ([2, 4], [0.0, 0.05])},
        },
        "eval": {
            "eval/fid": {"eval/fid": ([2, 4, 6], [40.0, 30.0, 30.0])},
            "eval/foo": {"eval/foo": ([4, 6], [5.0, 1.0])},
            "eval/modes": {"eval/modes": ([2, 4, 6], [3.0, 3.0, 2.0])},
        },
    }


def test_best_point_follows_the_metric_direction():
    """FID: lowest, the earlier of a tie (step 4, as best.pt); modes: highest, earliest (2);
    a metric of unknown direction and an empty series: no best."""
    panels = run_panels(ROWS)["eval"]
    assert best_point(panels["eval/fid"]["eval/fid"], "eval/fid") == (4, 30.0)
    assert best_point(panels["eval/modes"]["eval/modes"], "eval/modes") == (2, 3.0)
    assert best_point(panels["eval/foo"]["eval/foo"], "eval/foo") is None
    assert best_point(([], []), "eval/fid") is None


# --- a sweep ------------------------------------------------------------------------------


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Three jobs: two completed with an objective, one failed before logging anything."""
    objective = {"metric": "eval/fid", "direction": "minimize", "reduce": "best"}
    write_run(
        tmp_path / "0",
        ROWS[:3],
        {
            "status": "completed",
            "overrides": ["loss=ns"],
            "objective": {**objective, "value": 30.0},
        },
    )
    write_run(
        tmp_path / "1",
        [{"step": 2, "loss/d": 1.0, "loss/g": 2.0, "eval/fid": 50.0}],
        {
            "status": "completed",
            "overrides": ["loss=hinge"],
            "objective": {**objective, "value": 50.0},
        },
    )
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "job.json").write_text(
        json.dumps({"status": "failed", "overrides": ["loss=nope"], "error": "boom"})
    )
    return tmp_path  # fmt: skip


def test_sweep_panels_have_a_line_per_job(sweep):
    runs = collect_runs(sweep)
    assert sweep_panels(sweep, runs) == {
        "loss/d": {"0": ([1, 4], [1.5, 1.1]), "1": ([2], [1.0])},
        "loss/g": {"0": ([1, 2, 4], [0.7, 0.8, 0.9]), "1": ([2], [2.0])},
        "eval/fid": {"0": ([2, 4], [40.0, 30.0]), "1": ([2], [50.0])},
        "eval/foo": {"0": ([4], [5.0])},
        "eval/modes": {"0": ([2, 4], [3.0, 3.0])},
    }


def test_objective_bars_per_job(sweep):
    """The objective of job.json; without objectives the best eval/fid column of the table;
    with neither, no bars (final losses of different objectives do not compare)."""
    runs = collect_runs(sweep)
    assert objective_bars(runs) == ("objective (eval/fid)", {"0": 30.0, "1": 50.0})
    for r in runs:
        r.objective = None
    assert objective_bars(runs) == ("eval/fid min", {"0": 30.0, "1": 50.0})
    for r in runs:
        r.values = {k: v for k, v in r.values.items() if not k.startswith("eval/")}
    assert objective_bars(runs) is None


def test_job_labels_name_what_sets_each_job_apart(sweep):
    runs = collect_runs(sweep)
    for r in runs:
        r.overrides = ["debug=smoke", *r.overrides]
    assert job_labels(runs) == {"0": "0: loss=ns", "1": "1: loss=hinge", "2": "2: loss=nope"}


def test_sweep_plots_written(sweep):
    paths = write_plots(sweep)
    assert [p.relative_to(sweep).as_posix() for p in paths] == [
        "plots/curves.png",
        "plots/objective.png",
    ]
    for p in paths:
        with Image.open(p) as img:
            assert img.format == "PNG" and img.size[0] > 300


def test_plot_of_nothing_is_explained(tmp_path):
    with pytest.raises(GanrunError, match="no runs under"):
        write_plots(tmp_path)
    with pytest.raises(GanrunError, match="is not a folder"):
        write_plots(tmp_path / "missing")


# --- at the end of a run ------------------------------------------------------------------

VISUALS = ("trainer.plots=true", "trainer.timelapse=true")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """The same 4-step smoke run with plots and time-lapse on, and with them off."""
    root = tmp_path_factory.mktemp("visuals")
    run(root / "on", *VISUALS, "trainer.eval_every=2", "trainer.eval_samples=200")
    run(root / "off", "trainer.eval_every=2", "trainer.eval_samples=200")
    return root / "on", root / "off"


def test_run_leaves_plots_and_timelapse(runs):
    on, off = runs
    assert sorted(p.name for p in (on / "plots").iterdir()) == [
        "eval.png",
        "schedules.png",
        "training.png",
    ]
    with av.open(str(on / "videos" / "timelapse.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 2  # grids at steps 2 and 4
    assert not (off / "plots").exists() and not (off / "videos").exists()


def test_visuals_leave_the_numbers_alone(runs):
    """Weights, optimizer states, RNG states and logged losses: bit for bit with them off."""
    on, off = (load(r / "checkpoints" / "last.pt") for r in runs)
    for key in (*TENSOR_KEYS, "step"):
        assert_bit_equal(on[key], off[key], key)

    def losses(r: Path) -> list[dict]:
        rows = [json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in rows]

    assert losses(runs[0]) == losses(runs[1])


def test_one_grid_makes_no_timelapse(runs, tmp_path, caplog):
    """A run that drew one sample grid gets its plots but no one-frame video, and says why;
    a second grid brings the video back."""
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(runs[1], folder)
    grids = sorted((folder / "samples").glob("*.png"))
    assert len(grids) == 2
    grids[0].unlink()
    with caplog.at_level(logging.INFO, logger="ganrun"):
        written = RunVisuals(folder, True, True).finish(4)
    assert [p.parent.name for p in written] == ["plots"] * 3
    assert not (folder / "videos").exists()
    assert "needs 2" in caplog.text
    shutil.copy(grids[1], grids[0])
    assert [p.name for p in RunVisuals(folder, False, True).finish(4)] == [
        "timelapse.mp4",
        "timelapse.gif",
    ]


class Recorder:
    """A backend that remembers what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Path, int]] = []

    def log_image(self, name: str, path: Path, step: int) -> None:
        self.sent.append(("image", name, path, step))

    def log_video(self, name: str, path: Path, step: int) -> None:
        self.sent.append(("video", name, path, step))


def test_backend_gets_the_plots_and_the_video(runs, tmp_path):
    """The end of a run sends each plot as an image and the time-lapse mp4 as a video."""
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(runs[1], folder)  # a run without plots: finish() draws them
    backend = Recorder()
    written = RunVisuals(folder, True, True, backend).finish(4)
    plots = [folder / "plots" / f"{n}.png" for n in ("training", "schedules", "eval")]
    mp4 = folder / "videos" / "timelapse.mp4"
    assert written == [*plots, mp4, mp4.with_suffix(".gif")]
    assert backend.sent == [
        *[("image", f"plots/{p.stem}", p, 4) for p in plots],
        ("video", "videos/timelapse", mp4, 4),
    ]


def test_wandb_logs_the_same_plots_and_video(tmp_path_factory):
    """logger=wandb offline: the final step's history holds each plot and the mp4, their
    bytes those of the run folder's files."""
    pytest.importorskip("wandb")
    from test_wandb import WANDB, sessions
    from test_wandb import run as wandb_run

    run_dir = tmp_path_factory.mktemp("wandb_visuals") / "run"
    with pytest.MonkeyPatch.context() as mp:  # wandb's settings in a temporary home
        home = tmp_path_factory.mktemp("wandb_home")
        for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY"):
            mp.delenv(var, raising=False)
        mp.setenv("HOME", str(home))
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(home / var.lower()))
        wandb_run(run_dir, *WANDB, *VISUALS)
    (session,) = sessions(run_dir)
    row = session.history[4]
    for name in ("training", "schedules"):
        png = (run_dir / "plots" / f"{name}.png").read_bytes()
        assert row[f"plots/{name}._type"] == "image-file"
        assert row[f"plots/{name}.sha256"] == hashlib.sha256(png).hexdigest()
    mp4 = (run_dir / "videos" / "timelapse.mp4").read_bytes()
    assert row["videos/timelapse._type"] == "video-file"
    assert (session.folder / "files" / row["videos/timelapse.path"]).read_bytes() == mp4


def test_a_finished_sweep_draws_its_plots(sweep):
    """The multirun-end callback writes plots/curves.png and objective.png beside summary.csv
    when trainer.plots is on, and none when it is off."""
    from omegaconf import OmegaConf

    from ganrun.tracking.sweep import SweepSummary

    def end(plots: bool) -> None:
        config = OmegaConf.create(
            {"hydra": {"sweep": {"dir": str(sweep)}}, "trainer": {"plots": plots}}
        )
        SweepSummary(fail_exit_code=0).on_multirun_end(config)

    end(False)
    assert (sweep / "summary.csv").is_file() and not (sweep / "plots").exists()
    end(True)
    assert sorted(p.name for p in (sweep / "plots").iterdir()) == ["curves.png", "objective.png"]

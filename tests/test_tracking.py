"""The console (plain lines off a terminal, a live bar on one) and how backends name runs."""

from __future__ import annotations

import io
import json
import re

import pytest
from conftest import compose_cfg
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console

from ganrun.config import CONF, register
from ganrun.tracking.tracker import (
    RunLabels,
    Tracker,
    format_eta,
    run_labels,
    setup_logging,
    teardown_logging,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def hydra_node(*overrides: str):
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "train", overrides=["debug=smoke", *overrides], return_hydra_config=True
        ).hydra


# --- naming --------------------------------------------------------------------------------


def test_name_from_the_group_choices():
    """A CLI run names itself after its model, loss and dataset options; group = name."""
    cfg = compose_cfg("experiment=ring8")
    labels = run_labels(cfg, hydra_node("experiment=ring8"))
    assert labels == RunLabels("mlp-hinge-ring8", "mlp-hinge-ring8")
    assert run_labels(compose_cfg(), hydra_node()) == RunLabels(
        "dcgan-ns-digits", "dcgan-ns-digits"
    )


def test_multirun_jobs_share_the_sweep_folder_as_group():
    """In a multirun every job's group is the sweep folder; the job number ends the name."""
    hc = hydra_node("loss=hinge")
    hc.mode = "MULTIRUN"
    hc.job.num = 3
    hc.sweep.dir = "multirun/2026-11-22/20-00-00-000000"
    labels = run_labels(compose_cfg("loss=hinge"), hc)
    assert labels == RunLabels("dcgan-hinge-digits-3", "multirun/2026-11-22/20-00-00-000000")


def test_without_hydra_or_when_resuming_names_come_from_the_classes():
    """No Hydra record (library use), or a resume (whose config is the checkpoint's, not the
    command line's): the generator, loss and dataset class names."""
    assert run_labels(compose_cfg()).name == "dcgan-nonsaturating-digits"
    assert run_labels(compose_cfg("experiment=ring8")).name == "mlp-hinge-ring"
    resumed = compose_cfg("model=resnet", "loss=wgan_gp", "resume=somewhere")
    assert run_labels(resumed, hydra_node()).name == "resnet-wasserstein-digits"


# --- the console ---------------------------------------------------------------------------


@pytest.fixture
def plain(tmp_path):
    """A Tracker on a console that is not a terminal (CI, SLURM, a pipe), with its log lines."""
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    handlers = setup_logging(tmp_path, console)
    yield Tracker(tmp_path, console), buf
    teardown_logging(handlers)


def test_plain_lines_with_progress_and_eta(plain, tmp_path):
    """One line per logged step: step/total, the metrics, an ETA; no bar, no escape codes."""
    tracker, buf = plain
    tracker.start(0, 4)
    tracker.log({"loss/d": 1.5, "loss/g": 0.75, "perf/img_per_s": 100.0}, 1)
    tracker.log({"loss/d": float("nan"), "loss/g": 0.5}, 2)
    tracker.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert "\x1b" not in buf.getvalue()
    assert re.search(
        r"step 1/4  loss/d 1\.5  loss/g 0\.75  perf/img_per_s 100  eta \d+:\d\d$", lines[0]
    )
    assert re.search(r"step 2/4  loss/d nan  loss/g 0\.5  eta \d+:\d\d$", lines[1])
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[1] == {"step": 2, "loss/d": None, "loss/g": 0.5}
    assert "step 2/4  loss/d nan" in (tmp_path / "train.log").read_text()


def test_terminal_bar_shows_rate_losses_and_the_latest_eval(tmp_path):
    """On a terminal the bar shows steps, img/s, the newest losses and the last eval metrics
    (kept after a step that logs only losses); d/* and perf/* stay out of the bar."""
    buf = io.StringIO()
    console = Console(file=buf, width=250, force_terminal=True, color_system=None)
    tracker = Tracker(tmp_path, console)
    tracker.start(0, 10)
    tracker.log({"loss/d": 1.25, "d/real": 0.5, "perf/img_per_s": 1234.0}, 2)
    tracker.log({"eval/modes": 7.0}, 2)
    tracker.advance(3)
    tracker.log({"loss/d": 1.0, "loss/g": 0.25, "perf/img_per_s": 2000.0}, 3)
    tracker.progress.refresh()
    last = ANSI.sub("", buf.getvalue()).splitlines()[-1]
    tracker.close()
    assert "3/10" in last
    assert "2,000 img/s" in last
    assert "loss/d 1  loss/g 0.25  eval/modes 7" in last
    assert "d/real" not in last and "perf/" not in last


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (62.4, "1:02"), (3723, "1:02:03")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_tracker_without_backend_logs_to_the_run_folder_only(tmp_path):
    """The default (logger=none): metrics.jsonl gets the row; log_image is a no-op."""
    tracker = Tracker(tmp_path, Console(file=io.StringIO()))
    tracker.log({"loss/d": 2.0}, 1)
    tracker.log_image("samples", tmp_path / "missing.png", 1)
    assert OmegaConf.create(tracker.history[0]) == OmegaConf.create({"step": 1, "loss/d": 2.0})
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "loss/d": 2.0}\n'

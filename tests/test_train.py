"""ganrun.training.train.train in process: the run folder, checkpoints, exact resume, refusals."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg
from PIL import Image
from rich.console import Console

import ganrun
from ganrun.build import build_data, build_state
from ganrun.errors import GanrunError
from ganrun.tracking.tracker import Tracker
from ganrun.training.loop import LoopConfig, fit
from ganrun.training.train import train

TENSOR_KEYS = ("players", "rng")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def run(run_dir: Path, *overrides: str) -> dict[str, float]:
    """A fresh smoke run with `overrides`, as the CLI would pass them."""
    return train(
        compose_cfg(*overrides), run_dir, overrides=["debug=smoke", *overrides], console=quiet()
    )


def resume(run_dir: Path, ckpt: Path, *overrides: str) -> dict[str, float]:
    """Resume from `ckpt` into `run_dir`; only resume= and the given trainer.* overrides are passed."""
    given = [f"resume={ckpt}", *overrides]
    return train(compose_cfg(*given), run_dir, overrides=given, console=quiet())


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def run_and_resume(tmp_path: Path, *overrides: str) -> tuple[dict, dict, list, list]:
    """Run A (smoke, 4 steps) with `overrides`, resume its step-2 checkpoint into folder B;
    returns (A's last.pt, B's last.pt, A's metrics rows, B's metrics rows)."""
    a, b = tmp_path / "a", tmp_path / "b"
    run(a, *overrides)
    resume(b, a / "checkpoints" / "step_0000002.pt")
    ckpts = load(a / "checkpoints" / "last.pt"), load(b / "checkpoints" / "last.pt")
    return (*ckpts, metrics(a), metrics(b))


def assert_bit_equal(a, b, where: str = "") -> None:
    """Every tensor in the nested structures a and b is equal bit for bit; other leaves ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"tensors differ at {where}"
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_bit_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bit_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """One default (dcgan on digits) smoke run: 4 steps, checkpoints at 2 and 4."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    run(run_dir)
    return run_dir


@pytest.fixture
def run_copy(smoke_run, tmp_path) -> Path:
    """A private copy of the smoke run, for tests that write into it."""
    dst = tmp_path / "run"
    shutil.copytree(smoke_run, dst)
    return dst


# --- the run folder ------------------------------------------------------------------------


def test_run_folder_holds_config_logs_and_images(smoke_run):
    """A smoke run writes .hydra/, a non-empty train.log, reals.png and one grid per sample step."""
    assert (smoke_run / ".hydra" / "config.yaml").read_text().count("max_steps: 4") == 1
    assert (smoke_run / ".hydra" / "overrides.yaml").read_text().strip() == "- debug=smoke"
    assert (smoke_run / "train.log").stat().st_size > 0
    assert "step 4" in (smoke_run / "train.log").read_text()
    # 16 grey 16x16 images in a 4x4 grid with 2 px padding: 4 * 18 + 2 = 74 px
    for name in ("reals.png", "samples/0000002.png", "samples/0000004.png"):
        with Image.open(smoke_run / name) as img:
            img.verify()
        with Image.open(smoke_run / name) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "L", (74, 74)), name
    assert sorted(p.name for p in (smoke_run / "samples").iterdir()) == [
        "0000002.png",
        "0000004.png",
    ]


def test_metrics_one_finite_line_per_step(smoke_run):
    """metrics.jsonl has one JSON object per logged step (1..4), with finite losses and speed."""
    rows = metrics(smoke_run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        for key in ("loss/d", "loss/g", "perf/img_per_s"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r["step"], key)
        # the non-saturating loss starts near 2 log 2 (D) and log 2 (G)
        assert 0.0 < r["loss/d"] < 5.0
        assert 0.0 < r["loss/g"] < 5.0
        assert 0.0 < r["perf/img_per_s"] < 1e9


def test_checkpoint_contents(smoke_run):
    """Checkpoints load with weights_only=True and hold state, RNG, plain config and data facts."""
    ckpts = sorted(p.name for p in (smoke_run / "checkpoints").iterdir())
    assert ckpts == ["last.pt", "step_0000002.pt", "step_0000004.pt"]
    ckpt = load(smoke_run / "checkpoints" / "last.pt")
    required = {"players", "method", "schedules", "step", "best", "rng", "config", "data"}
    assert required | {"version", "format"} == set(ckpt)
    assert set(ckpt["players"]) == {"G", "D"}
    assert set(ckpt["players"]["G"]) == {"net", "opt", "scaler", "ema"}
    assert set(ckpt["players"]["D"]) == {"net", "opt", "scaler"}  # D has no EMA copy
    assert ckpt["step"] == 4
    assert ckpt["format"] == "ganrun.checkpoint/2"
    assert ckpt["version"] == ganrun.__version__
    assert ckpt["data"]["shape"] == [1, 16, 16]
    config = ckpt["config"]
    assert type(config) is dict
    assert config["model"]["generator"]["_target_"] == "ganrun.models.dcgan.DCGANGenerator"
    assert config["model"]["discriminator"]["_target_"] == "ganrun.models.dcgan.DCGANDiscriminator"
    assert config["trainer"]["max_steps"] == 4
    for name, part in (("G", "net"), ("D", "net"), ("G", "ema")):
        tensors = ckpt["players"][name][part].values()
        assert all(isinstance(v, torch.Tensor) for v in tensors), (name, part)
    assert set(ckpt["rng"]) >= {"torch", "python", "numpy"}
    # last.pt is the step-4 checkpoint, byte for byte
    assert (smoke_run / "checkpoints" / "last.pt").read_bytes() == (
        smoke_run / "checkpoints" / "step_0000004.pt"
    ).read_bytes()
    assert load(smoke_run / "checkpoints" / "step_0000002.pt")["step"] == 2


# --- exact resume --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param((), id="dcgan-digits"),
        pytest.param(("experiment=ring8",), id="mlp-ring8"),
        pytest.param(("loss=wgan_gp", "trainer.n_critic=2"), id="wgan_gp-ncritic2"),
    ],
)
def test_resume_into_new_folder_is_bit_exact(tmp_path, overrides):
    """Resuming run A's step-2 checkpoint into folder B ends with A's step-4 state, bit for bit."""
    a, b = tmp_path / "a", tmp_path / "b"
    run(a, *overrides)
    resume(b, a / "checkpoints" / "step_0000002.pt")
    ckpt_a, ckpt_b = load(a / "checkpoints" / "last.pt"), load(b / "checkpoints" / "last.pt")
    assert ckpt_b["step"] == 4
    for key in TENSOR_KEYS:
        assert_bit_equal(ckpt_a[key], ckpt_b[key], key)
    # training did happen after step 2 (so the equality above is not vacuous)
    ckpt_2 = load(a / "checkpoints" / "step_0000002.pt")
    assert any(
        not torch.equal(ckpt_2["players"]["G"]["net"][k], ckpt_a["players"]["G"]["net"][k])
        for k in ckpt_a["players"]["G"]["net"]
    )
    # B logs only the steps it trained, with A's exact losses
    rows_a, rows_b = metrics(a), metrics(b)
    assert [r["step"] for r in rows_b] == [3, 4]
    for ra, rb in zip(rows_a[2:], rows_b):
        assert (ra["loss/d"], ra["loss/g"]) == (rb["loss/d"], rb["loss/g"])
    assert ckpt_b["config"]["resume"] == str(a / "checkpoints" / "step_0000002.pt")


def test_resume_into_same_folder(run_copy):
    """Resuming a run in its own folder truncates metrics to step 2, re-appends 3..4, same last.pt."""
    before = load(run_copy / "checkpoints" / "last.pt")
    rows_before = metrics(run_copy)
    resume(run_copy, run_copy / "checkpoints" / "step_0000002.pt")
    rows_after = metrics(run_copy)
    assert [r["step"] for r in rows_after] == [1, 2, 3, 4]
    for ra, rb in zip(rows_before, rows_after):
        assert (ra["loss/d"], ra["loss/g"]) == (rb["loss/d"], rb["loss/g"])
    after = load(run_copy / "checkpoints" / "last.pt")
    assert after["step"] == 4
    for key in TENSOR_KEYS:
        assert_bit_equal(before[key], after[key], key)


def test_resume_longer_continues_to_new_max_steps(run_copy):
    """resume with trainer.max_steps=6 trains steps 5 and 6 and checkpoints step 6."""
    resume(run_copy, run_copy / "checkpoints" / "last.pt", "trainer.max_steps=6")
    assert [r["step"] for r in metrics(run_copy)] == [1, 2, 3, 4, 5, 6]
    last = load(run_copy / "checkpoints" / "last.pt")
    assert last["step"] == 6
    assert last["config"]["trainer"]["max_steps"] == 6
    assert load(run_copy / "checkpoints" / "step_0000006.pt")["step"] == 6
    assert (run_copy / "samples" / "0000006.png").is_file()


# --- refusals ------------------------------------------------------------------------------


def test_fresh_run_refuses_existing_run_folder(run_copy):
    """A fresh run into a folder that holds checkpoints raises and leaves every file untouched."""
    before = snapshot(run_copy)
    assert len(before) >= 10
    with pytest.raises(GanrunError, match="already holds a run"):
        run(run_copy)
    assert snapshot(run_copy) == before


def test_folder_of_run_that_failed_before_first_checkpoint_is_reusable(tmp_path):
    """A batch larger than the data fails before the run folder is made; the folder stays usable.

    A checkpoints/ folder with no checkpoint in it (a run killed before its first save) does
    not block a rerun either."""
    run_dir = tmp_path / "run"
    with pytest.raises(GanrunError, match="trainer.batch_size=5000"):
        run(run_dir, "trainer.batch_size=5000")
    assert not run_dir.exists()
    (run_dir / "checkpoints").mkdir(parents=True)
    run(run_dir)
    assert load(run_dir / "checkpoints" / "last.pt")["step"] == 4
    assert [r["step"] for r in metrics(run_dir)] == [1, 2, 3, 4]


def test_resume_refuses_non_trainer_override(smoke_run, tmp_path):
    """A resumed run keeps its checkpoint's config: loss=hinge is refused, naming the override."""
    with pytest.raises(GanrunError) as err:
        resume(tmp_path / "b", smoke_run / "checkpoints" / "step_0000002.pt", "loss=hinge")
    assert "loss=hinge" in str(err.value)
    assert "trainer." in str(err.value)
    assert not (tmp_path / "b").exists()


def test_resume_refuses_max_steps_below_checkpoint(smoke_run, tmp_path):
    """Resuming a step-4 checkpoint with trainer.max_steps=2 raises, naming trainer.max_steps."""
    with pytest.raises(GanrunError) as err:
        resume(tmp_path / "b", smoke_run / "checkpoints" / "last.pt", "trainer.max_steps=2")
    assert "trainer.max_steps" in str(err.value)
    assert "step 4" in str(err.value)
    assert not (tmp_path / "b").exists()


def test_resume_missing_checkpoint(tmp_path):
    """resume= pointing nowhere raises a GanrunError naming the path."""
    missing = tmp_path / "nope.pt"
    with pytest.raises(GanrunError) as err:
        resume(tmp_path / "b", missing)
    assert str(missing) in str(err.value)
    assert not (tmp_path / "b").exists()


# --- precision -----------------------------------------------------------------------------


def test_bf16_on_cpu_trains(tmp_path):
    """trainer.precision=bf16 on CPU runs the smoke preset with finite losses and fp32 weights."""
    run(tmp_path / "run", "trainer.precision=bf16")
    rows = metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert isinstance(r["loss/d"], float) and 0.0 < r["loss/d"] < 5.0
        assert isinstance(r["loss/g"], float) and 0.0 < r["loss/g"] < 5.0
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert {v.dtype for v in ckpt["players"]["G"]["net"].values() if v.is_floating_point()} == {
        torch.float32
    }


def test_fp16_on_cpu_is_refused(tmp_path):
    """trainer.precision=fp16 on CPU raises a GanrunError naming trainer.precision; no folder."""
    with pytest.raises(GanrunError) as err:
        run(tmp_path / "run", "trainer.precision=fp16")
    assert "trainer.precision" in str(err.value)
    assert not (tmp_path / "run").exists()


# --- the loop ------------------------------------------------------------------------------


class CountingBatches:
    """Wraps a batch iterator and counts how many batches the loop draws."""

    def __init__(self, batches) -> None:
        self.batches = batches
        self.calls = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.calls += 1
        return next(self.batches)


def adam_steps(opt: torch.optim.Optimizer) -> set[int]:
    return {int(s["step"]) for s in opt.state.values()}


def test_n_critic_draws_n_batches_per_generator_step(tmp_path):
    """With n_critic=3, fit draws 3 real batches and takes 3 D steps per G step."""
    cfg = compose_cfg("trainer.n_critic=3")
    data = build_data(cfg)
    state = build_state(cfg, data.shape, torch.device("cpu"))
    batches = CountingBatches(data.batches(8, cfg.seed, 0, "cpu"))
    loop_cfg = LoopConfig(max_steps=4, log_every=1, sample_every=0, ckpt_every=0)
    saves: list[bool] = []
    method = state.components["method"]
    fit(
        state,
        method,
        batches,
        loop_cfg,
        Tracker(tmp_path, quiet()),
        tmp_path / "samples",
        saves.append,
        fixed_inputs=method.sample_inputs(4, 0),
    )
    assert batches.calls == 12
    assert state.step == 4
    assert adam_steps(state.players["D"].opt) == {12}
    assert adam_steps(state.players["G"].opt) == {4}
    assert saves == [False]  # ckpt_every=0: one final, non-periodic checkpoint


def test_train_passes_n_critic_to_the_loop(tmp_path):
    """train() with trainer.n_critic=3 takes 12 D optimizer steps and 4 G steps in 4 steps."""
    run(tmp_path / "run", "trainer.n_critic=3")
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert {int(s["step"]) for s in ckpt["players"]["D"]["opt"]["state"].values()} == {12}
    assert {int(s["step"]) for s in ckpt["players"]["G"]["opt"]["state"].values()} == {4}

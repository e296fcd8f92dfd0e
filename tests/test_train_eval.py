"""eval/fid during training: logged on eval steps, checkpoints/best.pt kept, resume still exact."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, write_digit_classifier
from rich.console import Console

from ganrun.errors import GanrunError
from ganrun.training.train import train

EVAL_ON = ("trainer.eval_every=2", "trainer.eval_samples=200")  # 200 > 128 feature dims
TENSOR_KEYS = ("players", "rng")


def run(run_dir: Path, *overrides: str, console: Console | None = None) -> dict[str, float]:
    console = console or Console(file=io.StringIO(), width=200)
    return train(
        compose_cfg(*overrides), run_dir, overrides=["debug=smoke", *overrides], console=console
    )


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def tensors(tree, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor leaf of a nested dict/list, keyed by its path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    if not isinstance(tree, (dict, list, tuple)):
        return {}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    return {k: v for key, sub in items for k, v in tensors(sub, f"{prefix}.{key}").items()}


def assert_same_state(a: dict, b: dict) -> None:
    """Bit-equal tensors under TENSOR_KEYS, equal step and best."""
    assert (a["step"], a["best"]) == (b["step"], b["best"])
    for key in TENSOR_KEYS:
        ta, tb = tensors(a[key]), tensors(b[key])
        assert ta.keys() == tb.keys() and len(ta) > 0, key
        for name in ta:
            assert torch.equal(ta[name], tb[name]), f"{key}{name}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    write_digit_classifier(cache)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANRUN_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def run_a(cache, tmp_path_factory) -> tuple[Path, str]:
    """4 smoke steps on digits with eval every 2 steps; returns (run folder, console output)."""
    console = Console(file=io.StringIO(), width=200)
    run_dir = tmp_path_factory.mktemp("a") / "run"
    run(run_dir, *EVAL_ON, console=console)
    return run_dir, console.file.getvalue()


def test_eval_fid_logged_on_eval_steps(run_a):
    run_dir, _ = run_a
    logged = rows(run_dir)
    assert [r["step"] for r in logged] == [1, 2, 3, 4]
    assert [r["step"] for r in logged if "eval/fid" in r] == [2, 4]
    for r in logged:
        if "eval/fid" in r:
            assert 0.0 < r["eval/fid"] < 1e4
    assert not any(k.startswith("eval/") and k != "eval/fid" for r in logged for k in r)


def test_best_pt_holds_the_lowest_fid(run_a):
    """best.pt is the checkpoint of the eval step with the lowest eval/fid, bit for bit."""
    run_dir, _ = run_a
    fids = {r["step"]: r["eval/fid"] for r in rows(run_dir) if "eval/fid" in r}
    best_step = min(fids, key=fids.get)
    best = load(run_dir / "checkpoints" / "best.pt")
    expected = {
        "metric": "eval/fid",
        "value": fids[best_step],
        "step": best_step,
        "features": "digit-classifier",
    }
    assert best["best"] == expected and best["step"] == best_step
    assert load(run_dir / "checkpoints" / "last.pt")["best"] == expected
    # the periodic checkpoint of that step was written after the same evaluation
    assert_same_state(best, load(run_dir / "checkpoints" / f"step_{best_step:07d}.pt"))


def test_summary_names_the_extractor(run_a):
    run_dir, out = run_a
    text = " ".join(out.split())
    best = load(run_dir / "checkpoints" / "best.pt")["best"]
    assert f"eval/fid (digit-classifier) │ {rows(run_dir)[-1]['eval/fid']:.4g}" in text
    assert f"best.pt │ eval/fid {best['value']:.4g} at step {best['step']}" in text
    log = (run_dir / "train.log").read_text()
    assert (
        "eval/* image metrics: digit-classifier features (128-d), reference of 200 real images"
        in log
    )


def test_resume_with_eval_on_is_bit_exact(run_a, tmp_path):
    """Resuming step 2 into B: B's last.pt equals A's (best included), eval/fid at 4 too."""
    run_dir, _ = run_a
    given = [f"resume={run_dir / 'checkpoints' / 'step_0000002.pt'}"]
    train(compose_cfg(*given), tmp_path / "b", overrides=given, console=Console(file=io.StringIO()))
    assert_same_state(
        load(run_dir / "checkpoints" / "last.pt"), load(tmp_path / "b" / "checkpoints" / "last.pt")
    )
    assert rows(tmp_path / "b")[-1]["eval/fid"] == rows(run_dir)[-1]["eval/fid"]


def test_default_run_builds_no_extractor(tmp_path, monkeypatch):
    """eval_every=0 (the default): no classifier needed, no eval/*, no best.pt, no refstats."""
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "empty_cache"))
    run(tmp_path / "run")
    assert not any(k.startswith("eval/") for r in rows(tmp_path / "run") for k in r)
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert not (tmp_path / "empty_cache").exists()
    assert load(tmp_path / "run" / "checkpoints" / "last.pt")["best"] is None


def test_no_image_metrics_chosen(cache, tmp_path):
    """metrics=[] on digits (which has no metrics of its own): no eval/*, no best.pt."""
    run(tmp_path / "run", *EVAL_ON, "metrics=[]")
    assert not any(k.startswith("eval/") for r in rows(tmp_path / "run") for k in r)
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_points_keep_their_mode_metrics(cache, tmp_path):
    """ring8 with eval on: mode metrics only (no image features), and no best.pt."""
    run(tmp_path / "run", "dataset=ring8", "model=mlp", *EVAL_ON)
    evaluated = [r for r in rows(tmp_path / "run") if "eval/modes" in r]
    assert [r["step"] for r in evaluated] == [2, 4]
    assert not any("eval/fid" in r for r in evaluated)
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["trainer.eval_samples=50"], ["fid: 50 samples for 128-d", "trainer.eval_samples"]),
        (["metrics.features.weights=/nonexistent/classifier.pt"], ["/nonexistent/classifier.pt"]),
    ],
)
def test_refused_before_the_run_folder(cache, tmp_path, overrides, needles):
    with pytest.raises(GanrunError) as err:
        run(tmp_path / "run", "trainer.eval_every=2", *overrides)
    for needle in needles:
        assert needle in str(err.value)
    assert not (tmp_path / "run").exists()


def test_evaluation_does_not_change_the_training(run_a, tmp_path):
    """Eval on (extractor built, FID every 2 steps) trains the same weights as eval off: the
    evaluation's random init and draws stay out of the run's random streams."""
    run_dir, _ = run_a
    run(tmp_path / "off")
    on, off = rows(run_dir), rows(tmp_path / "off")
    losses = [k for k in off[0] if k.startswith(("loss/", "d/"))]
    assert len(losses) >= 2
    assert [[r[k] for k in losses] for r in on] == [[r[k] for k in losses] for r in off]
    a, b = load(run_dir / "checkpoints" / "last.pt"), load(tmp_path / "off/checkpoints/last.pt")
    for key in ("G", "D"):
        net_a, net_b = a["players"][key]["net"], b["players"][key]["net"]
        for name, t in tensors(net_a).items():
            assert torch.equal(t, tensors(net_b)[name]), f"{key}{name}"

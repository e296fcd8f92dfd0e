"""Mode-collapse metrics (modes, hq_pct, reverse_kl) and their eval/* lines during training."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg
from rich.console import Console

from ganrun.data.toy import Grid, Ring
from ganrun.evaluation.metrics import mode_metrics
from ganrun.training.train import train

EVAL_KEYS = ("eval/modes", "eval/hq_pct", "eval/reverse_kl")
EVAL_ON = ("dataset=ring8", "model=mlp", "trainer.eval_every=2", "trainer.eval_samples=200")


def ring_means() -> torch.Tensor:
    return Ring().means


# --- the metrics on hand-built point sets --------------------------------------------------


def test_points_on_every_mean_cover_all_modes():
    """10 points on each of the 8 means: 8 modes, 100 % high quality, reverse KL 0."""
    points = ring_means().repeat(10, 1)
    m = mode_metrics(points, ring_means(), std=0.01)
    assert set(m) == {"modes", "hq_pct", "reverse_kl"}
    assert all(type(v) is float for v in m.values())
    assert m["modes"] == 8.0
    assert 99.999 < m["hq_pct"] <= 100.0
    assert 0.0 <= m["reverse_kl"] < 1e-6


def test_points_on_one_mode_give_log_k():
    """Every point at mean 3 (with noise under 3 std): 1 mode, 100 % HQ, KL = log 8."""
    means = ring_means()
    noise = 0.01 * torch.tensor([[1.0, -1.5], [-2.0, 0.5], [0.0, 2.5], [1.2, 1.2]])
    points = means[3] + noise
    m = mode_metrics(points, means, std=0.01)
    assert m["modes"] == 1.0
    assert 99.999 < m["hq_pct"] <= 100.0
    assert m["reverse_kl"] == pytest.approx(math.log(8), abs=1e-9)


def test_points_far_from_every_mode_are_not_high_quality():
    """Points at the centre of the ring (distance 1 = 100 std from every mean): 0 HQ, 0 modes.

    With no high-quality point, reverse_kl falls back to the histogram of all nearest means:
    five points at distinct nearest means (offsets toward means 0, 2, 4, 6, 7) -> that q."""
    means = ring_means()
    far = 0.5 * means[[0, 2, 4, 6, 7]]  # radius 0.5: 50 std from the nearest mean
    m = mode_metrics(far, means, std=0.01)
    assert m["modes"] == 0.0
    assert m["hq_pct"] == 0.0
    assert m["reverse_kl"] == pytest.approx(math.log(8 / 5), abs=1e-9)


def test_two_modes_half_and_half():
    """Half the points on mean 0, half on mean 5, plus far junk: 2 modes, KL = log 4."""
    means = ring_means()
    points = torch.cat([means[0].repeat(30, 1), means[5].repeat(30, 1), torch.full((20, 2), 5.0)])
    m = mode_metrics(points, means, std=0.01)
    assert m["modes"] == 2.0
    # 60 of 80 points are high quality; KL = 2 * 0.5 * log(0.5 * 8) = log 4
    assert m["hq_pct"] == pytest.approx(75.0, abs=1e-9)
    assert m["reverse_kl"] == pytest.approx(math.log(4), abs=1e-9)


def test_three_std_is_the_quality_boundary():
    """A point at 2.9 std is high quality, one at 3.1 std is not (grid25: std 0.05)."""
    grid = Grid()
    m = grid.means[12]  # the centre mode (0, 0)
    points = torch.stack([m + torch.tensor([0.145, 0.0]), m + torch.tensor([0.0, 0.155])])
    out = grid.evaluate(points)
    assert out["modes"] == 1.0
    assert out["hq_pct"] == pytest.approx(50.0, abs=1e-9)
    assert out["reverse_kl"] == pytest.approx(math.log(25), abs=1e-9)


def test_real_samples_score_near_perfect():
    """10,000 samples from ring8 itself: all 8 modes, ~99.7 % within 3 std, KL near 0."""
    ring = Ring()
    m = ring.evaluate(ring.sample(10_000, torch.Generator().manual_seed(0)))
    assert m["modes"] == 8.0
    # P(chi_2 <= 9) = 1 - exp(-4.5) = 98.89 %: the 2-D 3-std disc
    assert 98.5 < m["hq_pct"] < 99.3
    assert 0.0 <= m["reverse_kl"] < 0.005


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="must be"):
        mode_metrics(torch.zeros(4, 3), ring_means(), std=0.01)
    with pytest.raises(ValueError, match="at least one"):
        mode_metrics(torch.zeros(0, 2), ring_means(), std=0.01)


# --- eval/* during training ---------------------------------------------------------------


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def run(run_dir: Path, *overrides: str) -> dict[str, float]:
    return train(
        compose_cfg(*overrides), run_dir, overrides=["debug=smoke", *overrides], console=quiet()
    )


def test_training_logs_eval_metrics_on_eval_steps(tmp_path):
    """eval_every=2 on a 4-step ring8 run: eval/* at steps 2 and 4 only, in range."""
    last = run(tmp_path / "run", *EVAL_ON)
    logged = rows(tmp_path / "run")
    assert [r["step"] for r in logged] == [1, 2, 3, 4]  # one line per step, eval merged in
    assert [r["step"] for r in logged if "eval/modes" in r] == [2, 4]
    for r in logged:
        assert ("loss/d" in r) and (all(k in r for k in EVAL_KEYS) == (r["step"] % 2 == 0))
        if r["step"] % 2 == 0:
            assert r["eval/modes"] in {float(k) for k in range(9)}
            assert 0.0 <= r["eval/hq_pct"] <= 100.0
            assert 0.0 <= r["eval/reverse_kl"] <= math.log(8) + 1e-9
    # train() returns the final line, eval included
    assert {k: last[k] for k in EVAL_KEYS} == {k: logged[-1][k] for k in EVAL_KEYS}


def test_eval_off_by_default_and_with_zero(tmp_path):
    """No eval/* keys without eval_every, nor with eval_every=0 (not even at the final step)."""
    run(tmp_path / "a", "dataset=ring8", "model=mlp")
    run(tmp_path / "b", "dataset=ring8", "model=mlp", "trainer.eval_every=0")
    for name in ("a", "b"):
        logged = rows(tmp_path / name)
        assert [r["step"] for r in logged] == [1, 2, 3, 4]
        assert not any(k.startswith("eval/") for r in logged for k in r)


def test_eval_every_not_dividing_logs_at_final_step(tmp_path):
    """eval_every=3 over 4 steps: eval at 3 and at the final step 4."""
    run(tmp_path / "run", "dataset=ring8", "model=mlp", "trainer.eval_every=3")
    assert [r["step"] for r in rows(tmp_path / "run") if "eval/modes" in r] == [3, 4]


def test_resume_with_eval_on_is_bit_exact(tmp_path):
    """Evaluation draws no global randomness: resuming step 2 into B gives A's last.pt exactly."""
    a, b = tmp_path / "a", tmp_path / "b"
    run(a, *EVAL_ON)
    given = [f"resume={a / 'checkpoints' / 'step_0000002.pt'}"]
    train(compose_cfg(*given), b, overrides=given, console=quiet())
    ckpt_a = torch.load(a / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    ckpt_b = torch.load(b / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt_b["step"] == 4
    for key in ("players", "rng"):
        flat_a, flat_b = _tensors(ckpt_a[key]), _tensors(ckpt_b[key])
        assert flat_a.keys() == flat_b.keys() and len(flat_a) > 0, key
        for name in flat_a:
            assert torch.equal(flat_a[name], flat_b[name]), f"{key}.{name}"
    # B evaluates at step 4 with A's exact numbers
    rows_a, rows_b = rows(a), rows(b)
    assert [r["step"] for r in rows_b] == [3, 4]
    assert {k: rows_b[-1][k] for k in EVAL_KEYS} == {k: rows_a[-1][k] for k in EVAL_KEYS}
    assert rows_b[-1]["loss/d"] == rows_a[-1]["loss/d"]


def test_negative_eval_every_is_refused(tmp_path):
    from ganrun.errors import GanrunError

    with pytest.raises(GanrunError, match="trainer.eval_every=-1"):
        run(tmp_path / "run", "dataset=ring8", "model=mlp", "trainer.eval_every=-1")
    assert not (tmp_path / "run").exists()


def _tensors(tree, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor leaf of a nested dict/list, keyed by its path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    if not isinstance(tree, (dict, list, tuple)):
        return {}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    out: dict[str, torch.Tensor] = {}
    for k, v in items:
        out.update(_tensors(v, f"{prefix}.{k}"))
    return out

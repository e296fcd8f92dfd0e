"""The non-finite guard under each trainer.on_nonfinite policy: no NaN/inf checkpoint is ever
written, and each policy does what it says (stop, skip, rollback)."""

from __future__ import annotations

import math

import pytest
import torch
from test_train import load, metrics, run

from ganrun.losses.ns import NonSaturatingLoss
from ganrun.training.nonfinite import NonFiniteError, NonFiniteGuard, first_nonfinite

DIVERGE = ("loss=lsgan", "optimizer.d.lr=1e20", "optimizer.g.lr=1e20")  # NaN from the start


def all_weights_finite(ckpt: dict) -> bool:
    return all(
        torch.isfinite(t).all()
        for player in ckpt["players"].values()
        for part in ("net", "ema")
        for t in player.get(part, {}).values()
        if t.is_floating_point()
    )


class NanOnceAtStep3(NonSaturatingLoss):
    """The non-saturating loss, but NaN at D step index 2 (training step 3) the first time."""

    fired = False

    def d_objective(self, real, fake):
        loss = super().d_objective(real, fake)
        if getattr(self, "index", 0) == 2 and not NanOnceAtStep3.fired:
            NanOnceAtStep3.fired = True
            return loss * float("nan")
        return loss

    def d_loss(self, D, real, fake, d_step=0, *args):
        self.index = d_step
        return super().d_loss(D, real, fake, d_step, *args)


class NanAlways(NonSaturatingLoss):
    def d_objective(self, real, fake):
        return super().d_objective(real, fake) * float("nan")


def test_stop_names_the_step_value_and_last_good_checkpoint(tmp_path):
    """lr 1e20: the run stops with NonFiniteError at the first log step; no checkpoint with
    a NaN is written (here none at all: it diverges before the first one)."""
    with pytest.raises(NonFiniteError, match=r"is nan at step 1: training diverged.*none yet"):
        run(tmp_path / "r", *DIVERGE)
    assert list((tmp_path / "r" / "checkpoints").glob("*.pt")) == []


def test_stop_after_a_good_checkpoint_names_it(tmp_path):
    """NaN at step 3 after the step-2 checkpoint: the message names last.pt, which stays the
    finite step-2 checkpoint (step 4's would hold NaN and is never written)."""
    NanOnceAtStep3.fired = False
    loss = f"loss._target_={__name__}.NanOnceAtStep3"
    with pytest.raises(NonFiniteError, match=r"loss/d is nan at step 3.*checkpoints/last.pt"):
        run(tmp_path / "r", loss)
    last = load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert last["step"] == 2 and all_weights_finite(last)


def test_skip_drops_the_bad_update_and_goes_on(tmp_path):
    """on_nonfinite=skip with a NaN D loss once at step 3: that one D update is dropped
    (guard/skipped 0, 0, 1, 1), the run completes and every checkpoint is finite."""
    NanOnceAtStep3.fired = False
    run(tmp_path / "r", f"loss._target_={__name__}.NanOnceAtStep3", "trainer.on_nonfinite=skip")
    rows = metrics(tmp_path / "r")
    assert [r["guard/skipped"] for r in rows] == [0.0, 0.0, 1.0, 1.0]
    ckpt = load(tmp_path / "r" / "checkpoints" / "last.pt")
    adam_steps = {int(s["step"]) for s in ckpt["players"]["D"]["opt"]["state"].values()}
    assert ckpt["step"] == 4 and adam_steps == {3}  # 4 D steps, one dropped
    for path in (tmp_path / "r" / "checkpoints").glob("*.pt"):
        assert all_weights_finite(load(path)), path.name


def test_skip_cannot_save_weights_that_went_non_finite(tmp_path):
    """on_nonfinite=skip with lr 1e20: updates are dropped, but a finite update of size 1e20
    already made D's BatchNorm statistics NaN; the checkpoint at step 2 is refused with the
    error naming that tensor, and no checkpoint is written."""
    with pytest.raises(NonFiniteError, match=r"weight D\.net\..* at step 2"):
        run(tmp_path / "r", *DIVERGE, "trainer.on_nonfinite=skip")
    assert list((tmp_path / "r" / "checkpoints").glob("*.pt")) == []


def test_rollback_reloads_with_halved_learning_rates(tmp_path):
    """A NaN once at step 3: rollback reloads the step-2 checkpoint with both lrs halved and
    finishes; metrics.jsonl has each step once, lr 2e-4 before and 1e-4 after."""
    NanOnceAtStep3.fired = False
    run(tmp_path / "r", f"loss._target_={__name__}.NanOnceAtStep3", "trainer.on_nonfinite=rollback")
    rows = metrics(tmp_path / "r")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["lr/d"] for r in rows] == [2e-4, 2e-4, 1e-4, 1e-4]
    assert all(math.isfinite(r["loss/d"]) for r in rows)
    last = load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert last["step"] == 4 and all_weights_finite(last)
    assert last["players"]["G"]["opt"]["param_groups"][0]["lr"] == 1e-4
    assert "Rolled back to" in (tmp_path / "r" / "train.log").read_text()


def test_rollback_gives_up_after_max_rollbacks(tmp_path):
    """A loss that is always NaN: max_rollbacks=2 reloads twice (from the start of the run:
    no checkpoint yet), each time lowering the rates, then stops with the error."""
    with pytest.raises(NonFiniteError, match="at step 1"):
        run(
            tmp_path / "r",
            f"loss._target_={__name__}.NanAlways",
            "trainer.on_nonfinite=rollback",
            "trainer.max_rollbacks=2",
        )
    log = (tmp_path / "r" / "train.log").read_text()
    assert log.count("Rolled back to the start of the run") == 2
    assert "learning rates x0.25 (rollback 2 of 2)" in log


def test_guard_checks():
    assert first_nonfinite({"loss/d": 1.0, "loss/g": float("inf")}) == ("loss/g", float("inf"))
    assert first_nonfinite({"loss/d": 1.0}) is None
    NonFiniteGuard("skip").check_logs({"loss/d": float("nan")}, 1)  # skip: updates dropped
    with pytest.raises(NonFiniteError):
        NonFiniteGuard("stop").check_logs({"loss/d": float("nan")}, 1)
    NonFiniteGuard("stop").check_logs({"perf/img_per_s": float("inf"), "loss/d": 0.5}, 1)

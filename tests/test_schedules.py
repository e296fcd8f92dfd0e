"""Schedules: values at given points against hand-computed numbers, what each parameter
writes, every conf/schedule/*.yaml built and applied, and resume with a schedule bit-exact."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_cfg
from test_config import options
from test_train import TENSOR_KEYS, assert_bit_equal, load, metrics, run, run_and_resume

from ganrun.build import build_data, build_schedules, build_state
from ganrun.errors import GanrunError
from ganrun.training.ema import EmaRate
from ganrun.training.schedules import (
    AdamBeta2,
    Constant,
    Cosine,
    EmaDecay,
    LearningRate,
    LinearDecay,
    PenaltyWeight,
    Progress,
    ScheduledRun,
    Schedules,
)

CPU = torch.device("cpu")


def at(step: int, max_steps: int = 100, per_step: int = 64) -> Progress:
    return Progress(step, step * per_step, max_steps, max_steps * per_step)


def test_constant_keeps_the_base_or_its_value():
    assert Constant()(at(7), 2e-4) == 2e-4
    assert Constant(value=1e-3)(at(7), 2e-4) == 1e-3


def test_linear_decay_holds_then_falls_to_final():
    """hold 40, length 50, base 2e-4 -> 0: 2e-4 until step 40, 1e-4 at 65, 0 from 90."""
    shape = LinearDecay(hold=40, length=50)
    values = [shape(at(s), 2e-4) for s in (0, 39, 40, 65, 90, 100)]
    torch.testing.assert_close(values, [2e-4, 2e-4, 2e-4, 1e-4, 0.0, 0.0], rtol=1e-12, atol=0)


def test_linear_decay_defaults_to_half_the_run():
    """hold and length null over 100 steps: constant to 50, then linear: 0.5 x base at 75."""
    shape = LinearDecay()
    torch.testing.assert_close(
        [shape(at(s), 1.0) for s in (49, 50, 75, 99)], [1.0, 1.0, 0.5, 0.02], rtol=1e-12, atol=0
    )
    assert LinearDecay(final=0.25)(at(100), 1.0) == 0.25


def test_cosine_follows_half_a_cosine():
    """0.9 -> 0.99 over 80 steps from step 20: 0.9 before, 0.945 halfway, 0.99 after;
    a quarter of the way: 0.99 + (0.9 - 0.99)(1 + cos(pi/4))/2."""
    shape = Cosine(final=0.99, initial=0.9, length=80, start=20)
    quarter = 0.99 + (0.9 - 0.99) * 0.5 * (1 + math.cos(math.pi / 4))
    torch.testing.assert_close(
        [shape(at(s), 123.0) for s in (0, 20, 40, 60, 100, 200)],
        [0.9, 0.9, quarter, 0.945, 0.99, 0.99],
        rtol=1e-12,
        atol=1e-15,
    )


def test_cosine_in_images_from_the_base_over_the_run():
    """unit=images, initial null (the base 2e-4), length null: the whole run's images;
    at half the images the value is the midpoint 1.25e-4."""
    shape = Cosine(final=5e-5, unit="images")
    torch.testing.assert_close(shape(at(50, per_step=32), 2e-4), 1.25e-4, rtol=1e-12, atol=0)
    torch.testing.assert_close(shape(at(0, per_step=32), 2e-4), 2e-4, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: LinearDecay(unit="epochs"), "unit=epochs"),
        (lambda: LinearDecay(hold=-1), "hold=-1"),
        (lambda: Cosine(final=0.0, length=0), "length=0"),
    ],
)
def test_bad_shapes_name_the_key(make, key):
    with pytest.raises(GanrunError, match=key):
        make()


def smoke_run(*overrides: str):
    cfg = compose_cfg(*overrides)
    data = build_data(cfg)
    state = build_state(cfg, data.shape, CPU, data.num_classes)
    ema = EmaRate(cfg.trainer.ema_decay)
    return cfg, state, ScheduledRun(state, state.components["method"], ema), ema


def test_parameters_write_the_value_where_it_acts():
    """lr of every param group, Adam's beta2 (beta1 kept), a penalty's weight, the EMA decay."""
    _, state, run, ema = smoke_run("loss=wgan_gp")
    schedules = Schedules(
        {
            "lr": LearningRate("D", Constant(1e-3)),
            "beta2": AdamBeta2("G", Constant(0.99)),
            "gp": PenaltyWeight("gp", Constant(2.5)),
            "ema": EmaDecay(Constant(0.9)),
        }
    )
    schedules.bind(run)
    assert schedules.bases == {"lr": 2e-4, "beta2": 0.999, "gp": 10.0, "ema": 0.999}
    values = schedules.apply(at(3))
    assert values == {"lr/d": 1e-3, "beta2/g": 0.99, "weight/gp": 2.5, "ema/decay": 0.9}
    assert [g["lr"] for g in state.players["D"].opt.param_groups] == [1e-3]
    assert state.players["G"].opt.param_groups[0]["lr"] == 2e-4  # G untouched
    assert tuple(state.players["G"].opt.param_groups[0]["betas"]) == (0.5, 0.99)
    assert state.components["method"].loss.penalties["gp"].weight == 2.5
    assert ema.decay == 0.9


def test_unknown_player_or_penalty_is_a_clear_error():
    _, _, run, _ = smoke_run()
    with pytest.raises(GanrunError, match="player 'E'.*G, D"):
        Schedules({"x": LearningRate("E", Constant())}).bind(run)
    with pytest.raises(GanrunError, match="penalty 'gp'.*none"):
        Schedules({"x": PenaltyWeight("gp", Constant())}).bind(run)
    with pytest.raises(GanrunError, match="two entries set lr/g"):
        Schedules({"a": LearningRate("G", Constant()), "b": LearningRate("G", Constant())}).bind(
            run
        )


@pytest.mark.parametrize("name", options("schedule"))
def test_schedule_yaml_builds_binds_and_applies(name):
    """schedule=<name> builds from its YAML, binds to the run and sets finite values at the
    start and end of the run (constant: nothing to set)."""
    cfg, state, run, _ = smoke_run(f"schedule={name}")
    schedules = build_schedules(cfg)
    schedules.bind(run)
    first = schedules.apply(at(0, cfg.trainer.max_steps))
    last = schedules.apply(at(cfg.trainer.max_steps, cfg.trainer.max_steps))
    assert set(first) == set(last)
    assert (first == {}) == (name == "constant")
    for key in first:
        assert math.isfinite(first[key]) and math.isfinite(last[key]), key
        assert first[key] != last[key], key  # every shipped schedule moves its value


def test_linear_decay_run_logs_the_scheduled_lr(tmp_path):
    """schedule=linear_decay over 4 steps (hold 2, length 2): lr/g and lr/d logged before each
    step's update are 2e-4, 2e-4, 2e-4, 1e-4 (steps 1..4 log the lr of steps 0..3)."""
    run(tmp_path / "a", "schedule=linear_decay")
    rows = metrics(tmp_path / "a")
    for key in ("lr/g", "lr/d"):
        torch.testing.assert_close(
            [r[key] for r in rows], [2e-4, 2e-4, 2e-4, 1e-4], rtol=1e-12, atol=0
        )
    # the optimizer in the checkpoint holds the last applied value
    last = load(tmp_path / "a" / "checkpoints" / "last.pt")
    torch.testing.assert_close(
        last["players"]["G"]["opt"]["param_groups"][0]["lr"], 1e-4, rtol=1e-12, atol=0
    )
    assert last["schedules"] == {"bases": {"lr_g": 2e-4, "lr_d": 2e-4}}


def test_resume_with_a_schedule_is_bit_exact(tmp_path):
    """A cosine schedule on both lrs and on D's beta2: resuming step 2 ends with the
    uninterrupted run's step-4 state bit for bit, and logs the same values."""
    overrides = (
        "schedule=cosine",
        "+schedule.b2._target_=ganrun.training.schedules.AdamBeta2",
        "+schedule.b2.player=D",
        "+schedule.b2.shape._target_=ganrun.training.schedules.Cosine",
        "+schedule.b2.shape.final=0.9",
    )
    ckpt_a, ckpt_b, rows_a, rows_b = run_and_resume(tmp_path, *overrides)
    for key in (*TENSOR_KEYS, "schedules"):
        assert_bit_equal(ckpt_a[key], ckpt_b[key], key)
    assert [r["step"] for r in rows_b] == [3, 4]
    for ra, rb in zip(rows_a[2:], rows_b):
        for key in ("loss/d", "loss/g", "lr/g", "lr/d", "beta2/d"):
            assert ra[key] == rb[key], key
    assert rows_a[0]["beta2/d"] == 0.999 and rows_a[-1]["beta2/d"] < 0.999

"""Regularisers on G (the G-side hook: weight and lazy every=k) and StyleGAN2's
lazy-regularisation optimizer correction."""

from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import compose_cfg
from test_train import metrics, run

from ganrun.build import build_loss, build_state
from ganrun.errors import GanrunError
from ganrun.losses.regularisers import OrthogonalRegulariser, orthogonality
from ganrun.training.methods.gan import MicroBatch, g_regularisation, g_step
from ganrun.training.schedules import Constant, LearningRate, Progress, ScheduledRun, Schedules

CPU = torch.device("cpu")
ORTHO = "ganrun.losses.regularisers.OrthogonalRegulariser"
R1_EVERY_16 = (
    "loss=hinge",
    "+loss.penalties.r1._target_=ganrun.losses.penalties.R1Penalty",
    "+loss.penalties.r1.weight=10",
    "+loss.penalties.r1.every=16",
)


def test_orthogonality_by_hand():
    """W = [[1, 2], [3, 4]]: W W^T = [[5, 11], [11, 25]], off-diagonal squares 2 x 121."""
    torch.testing.assert_close(
        orthogonality(torch.tensor([[1.0, 2.0], [3.0, 4.0]])), torch.tensor(242.0)
    )
    torch.testing.assert_close(orthogonality(torch.eye(3)), torch.tensor(0.0))


def test_orthogonal_regulariser_sums_weights_not_biases():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        net[2].weight.copy_(torch.eye(2))
        net[0].bias.fill_(100.0)
    value = OrthogonalRegulariser()(net, net, torch.zeros(1, 2))
    torch.testing.assert_close(value, torch.tensor(242.0))


def test_lazy_g_regulariser_runs_every_k_weighted_by_k():
    """every=2, weight 0.5: on G steps 0 and 2 the term is 0.5 x 2 x value; on 1 and 3 nothing."""
    net = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    regs = {"ortho": OrthogonalRegulariser(weight=0.5, every=2)}
    for index in range(4):
        total, logs = g_regularisation(regs, net, net, torch.zeros(1, 2), index, None)
        if index % 2:
            assert total is None and logs == {}
        else:
            torch.testing.assert_close(total, torch.tensor(242.0))
            torch.testing.assert_close(logs["ortho"], torch.tensor(242.0))


def test_g_step_adds_the_regulariser_gradient():
    """G's gradient with the regulariser = without it + weight x every x d(ortho)/dW."""
    cfg = compose_cfg("model=mlp")
    gen = torch.Generator().manual_seed(2)
    real = torch.rand(8, 1, 16, 16, generator=gen) * 2 - 1
    z = torch.randn(8, cfg.model.z_dim, generator=gen)
    regs = {"ortho": OrthogonalRegulariser(weight=1e-3, every=3)}

    def g_grads(regularisers):
        state = build_state(cfg, (1, 16, 16), CPU)
        G, D = state.players["G"], state.players["D"]
        logs = g_step(
            G,
            D,
            build_loss(cfg),
            [MicroBatch(real, None, z)],
            contextlib.nullcontext,
            regularisers=regularisers,
            index=0,
        )
        return [p.grad.clone() for p in G.net.parameters()], logs, state

    plain, plain_logs, _ = g_grads(None)
    regular, reg_logs, state = g_grads(regs)
    fresh = build_state(cfg, (1, 16, 16), CPU).players["G"].net  # the weights before the step
    expected = torch.autograd.grad(
        3e-3 * OrthogonalRegulariser()(fresh, fresh, z), list(fresh.parameters()), allow_unused=True
    )
    for a, b, e in zip(plain, regular, expected):
        torch.testing.assert_close(
            b - a, torch.zeros_like(a) if e is None else e, rtol=1e-4, atol=1e-7
        )
    assert "ortho" in reg_logs and "ortho" not in plain_logs
    torch.testing.assert_close(reg_logs["loss/g"], plain_logs["loss/g"] + 3e-3 * reg_logs["ortho"])


def test_g_regulariser_from_the_command_line(tmp_path):
    """+method.g_regularisers.ortho... trains and logs `ortho` on the lazy steps (every=2: G
    steps 0 and 2, logged at steps 1 and 3)."""
    run(
        tmp_path / "r",
        f"+method.g_regularisers.ortho._target_={ORTHO}",
        "+method.g_regularisers.ortho.every=2",
    )
    rows = metrics(tmp_path / "r")
    assert ["ortho" in r for r in rows] == [True, False, True, False]
    assert all(r["ortho"] > 0 for r in rows if "ortho" in r)


def test_lazy_regularisation_correction():
    """R1 every 16 on D with the correction: D's lr x 16/17 and betas ^ 16/17; G (not lazily
    regularised) keeps lr 2e-4 and betas (0.5, 0.999). Off by default."""
    c = 16 / 17
    on = build_state(
        compose_cfg(*R1_EVERY_16, "method.lazy_regularisation_correction=true"), (1, 16, 16), CPU
    )
    d, g = on.players["D"].opt.param_groups[0], on.players["G"].opt.param_groups[0]
    torch.testing.assert_close(d["lr"], 2e-4 * c, rtol=1e-12, atol=0)
    torch.testing.assert_close(list(d["betas"]), [0.5**c, 0.999**c], rtol=1e-12, atol=0)
    assert (g["lr"], tuple(g["betas"])) == (2e-4, (0.5, 0.999))
    assert (on.players["D"].reg_ratio, on.players["G"].reg_ratio) == (c, 1.0)
    off = build_state(compose_cfg(*R1_EVERY_16), (1, 16, 16), CPU)
    assert off.players["D"].opt.param_groups[0]["lr"] == 2e-4
    # G-side: a regulariser every 4 G steps gives G the ratio 4/5
    g_lazy = build_state(
        compose_cfg(
            f"+method.g_regularisers.ortho._target_={ORTHO}",
            "+method.g_regularisers.ortho.every=4",
            "method.lazy_regularisation_correction=true",
        ),
        (1, 16, 16),
        CPU,
    )
    torch.testing.assert_close(
        g_lazy.players["G"].opt.param_groups[0]["lr"], 2e-4 * 0.8, rtol=1e-12, atol=0
    )


def test_schedules_and_logs_see_the_uncorrected_lr(tmp_path):
    """With the correction, lr/d logs the configured 2e-4, and a scheduled lr is applied
    times the ratio (the optimizer holds value x 16/17)."""
    overrides = (*R1_EVERY_16, "method.lazy_regularisation_correction=true")
    run(tmp_path / "r", *overrides)
    torch.testing.assert_close(
        [r["lr/d"] for r in metrics(tmp_path / "r")], [2e-4] * 4, rtol=1e-12, atol=0
    )
    state = build_state(compose_cfg(*overrides), (1, 16, 16), CPU)
    schedules = Schedules({"lr": LearningRate("D", Constant(1e-3))})
    schedules.bind(ScheduledRun(state, state.components["method"], None))
    assert schedules.bases == {"lr": pytest.approx(2e-4, rel=1e-12)}
    schedules.apply(Progress(0, 0, 4, 256))
    torch.testing.assert_close(
        state.players["D"].opt.param_groups[0]["lr"], 1e-3 * 16 / 17, rtol=1e-12, atol=0
    )


def test_correction_needs_one_interval_per_player():
    cfg = compose_cfg(
        *R1_EVERY_16,
        "+loss.penalties.gp._target_=ganrun.losses.penalties.GradientPenalty",
        "+loss.penalties.gp.every=4",
        "method.lazy_regularisation_correction=true",
    )
    with pytest.raises(
        GanrunError, match=r"D's penalties run at different intervals \(every=\[4, 16\]\)"
    ):
        build_state(cfg, (1, 16, 16), CPU)

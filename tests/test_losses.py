"""Adversarial objectives against numbers worked out by hand, and the gradient penalty.

The expected values are written from the papers' definitions with `math` on the specific
logits below (sigmoid, log, squares, hinges), never with the torch formula under test.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_cfg
from torch import nn

from ganrun.build import build_loss
from ganrun.config import CONF
from ganrun.losses.base import AdversarialLoss
from ganrun.losses.hinge import HingeLoss
from ganrun.losses.lsgan import LeastSquaresLoss
from ganrun.losses.minimax import MinimaxLoss
from ganrun.losses.ns import NonSaturatingLoss
from ganrun.losses.penalties import (
    DraganPenalty,
    GradientPenalty,
    R1Penalty,
    R2Penalty,
    gradient_penalty,
    input_gradient_norm,
)
from ganrun.losses.relativistic import RelativisticAverageLoss, RelativisticStandardLoss
from ganrun.losses.wgan import WassersteinLoss
from ganrun.losses.wgan_clip import ClippedWassersteinLoss

REAL = [2.0, -1.0, 0.5]  # D's logits on a real batch
FAKE = [-0.5, 1.5, 0.0]  # D's logits on a generated batch


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# D: -E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logit)
BCE_D = -mean(math.log(sigmoid(r)) for r in REAL) - mean(math.log(1.0 - sigmoid(f)) for f in FAKE)

CASES = {
    # name: (loss, expected d_objective, expected g_objective)
    "minimax": (MinimaxLoss(), BCE_D, mean(math.log(1.0 - sigmoid(f)) for f in FAKE)),
    "ns": (NonSaturatingLoss(), BCE_D, -mean(math.log(sigmoid(f)) for f in FAKE)),
    # E[D(G(z))] - E[D(x)] = (1/3) - (1.5/3); G: -E[D(G(z))]
    "wgan": (WassersteinLoss(), 1.0 / 3 - 1.5 / 3, -1.0 / 3),
    # 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2] = 1/2 (5.25/3 + 2.5/3); G: 1/2 E[(D(G(z)) - 1)^2]
    "lsgan": (LeastSquaresLoss(), 0.5 * (5.25 / 3 + 2.5 / 3), 0.5 * 3.5 / 3),
    # the -1/1 coding (a=-1, b=1): 1/2 (5.25/3 + (0.25 + 6.25 + 1)/3); G unchanged
    "lsgan_pm1": (
        LeastSquaresLoss(real_target=1.0, fake_target=-1.0),
        0.5 * (5.25 / 3 + 7.5 / 3),
        0.5 * 3.5 / 3,
    ),
    # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] = (0 + 2 + 0.5)/3 + (0.5 + 2.5 + 1)/3
    "hinge": (HingeLoss(), 2.5 / 3 + 4.0 / 3, -1.0 / 3),
}


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_hand_numbers_are_what_they_claim():
    """The closed forms above, spelled out once more in decimals."""
    assert math.isclose(CASES["wgan"][1], -1.0 / 6)
    assert math.isclose(CASES["lsgan"][1], 31.0 / 24)
    assert math.isclose(CASES["lsgan"][2], 7.0 / 12)
    assert math.isclose(CASES["hinge"][1], 13.0 / 6)
    # (0.126928 + 1.313262 + 0.474077) / 3 + (0.474077 + 1.701413 + 0.693147) / 3
    assert math.isclose(BCE_D, 1.5943014, rel_tol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_d_objective_matches_hand_computation(name):
    """d_objective(real_logits, fake_logits) equals the paper's D loss on fixed logits."""
    loss, expected_d, _ = CASES[name]
    value = loss.d_objective(t(REAL), t(FAKE))
    assert value.shape == ()
    torch.testing.assert_close(value, torch.tensor(expected_d), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_g_objective_matches_hand_computation(name):
    """g_objective(fake_logits) equals the paper's G loss on fixed logits."""
    loss, _, expected_g = CASES[name]
    value = loss.g_objective(t(FAKE))
    assert value.shape == ()
    torch.testing.assert_close(value, torch.tensor(expected_g), rtol=1e-6, atol=1e-6)


def test_logistic_losses_are_stable_at_extreme_logits():
    """Logits of +-200 (sigmoid rounds to 0 or 1 in float32) still give the exact finite value."""
    real, fake = t([200.0, -200.0]), t([-200.0, 200.0])
    # -log sigmoid(200) ~ 0, -log sigmoid(-200) = 200; -log(1 - sigmoid(f)) = 0 and 200
    torch.testing.assert_close(MinimaxLoss().d_objective(real, fake), torch.tensor(100.0 + 100.0))
    torch.testing.assert_close(NonSaturatingLoss().g_objective(fake), torch.tensor(100.0))
    torch.testing.assert_close(MinimaxLoss().g_objective(fake), torch.tensor(-100.0))


def test_minimax_saturates_where_ns_does_not():
    """At a confidently rejected fake (logit -10) minimax's G gradient vanishes, NS's does not."""
    grads = {}
    for name, loss in (("minimax", MinimaxLoss()), ("ns", NonSaturatingLoss())):
        fake = t([-10.0]).requires_grad_(True)
        loss.g_objective(fake).backward()
        grads[name] = fake.grad
    # d/df log(1 - sigmoid(f)) = -sigmoid(f); d/df -log sigmoid(f) = -(1 - sigmoid(f))
    torch.testing.assert_close(grads["minimax"], t([-1.0 / (1.0 + math.exp(10.0))]))
    torch.testing.assert_close(grads["ns"], t([-1.0 / (1.0 + math.exp(-10.0))]))


# ------------------------------------------------------------------ gradient penalty


class LinearD(nn.Module):
    """D(x) = w . flatten(x): its input gradient is w everywhere, so ||grad|| = ||w||."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(t(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


@pytest.mark.parametrize(
    ("w", "expected"),
    [
        ([3.0, 4.0], (5.0 - 1.0) ** 2),
        ([0.6, 0.8], 0.0),
        ([1.0, 2.0, 2.0, 4.0], (5.0 - 1.0) ** 2),
        ([0.0, 0.5, 0.0, 0.0], 0.25),
    ],
)
def test_gradient_penalty_of_linear_critic(w, expected):
    """For D(x) = w.x, GP = (||w|| - 1)^2 whatever the samples and interpolation weights."""
    torch.manual_seed(0)
    D = LinearD(w)
    shape = (6, 2) if len(w) == 2 else (6, 1, 2, 2)  # points and (tiny) images
    real, fake = torch.randn(shape), torch.randn(shape)
    norms = input_gradient_norm(D, real)
    torch.testing.assert_close(norms, torch.full((6,), math.sqrt(sum(v * v for v in w))))
    torch.testing.assert_close(gradient_penalty(D, real, fake), torch.tensor(expected))
    torch.testing.assert_close(GradientPenalty(weight=10.0)(D, real, fake), torch.tensor(expected))


def test_gradient_penalty_center():
    """center c: GP = (||w|| - c)^2; c = 0 gives ||w||^2 (the zero-centred variant)."""
    D, x = LinearD([3.0, 4.0]), torch.randn(5, 2)
    torch.testing.assert_close(
        GradientPenalty(weight=1.0, center=0.0)(D, x, x + 1), torch.tensor(25.0)
    )
    torch.testing.assert_close(
        GradientPenalty(weight=1.0, center=2.0)(D, x, x + 1), torch.tensor(9.0)
    )


def test_gradient_penalty_is_differentiable_in_the_critic():
    """The penalty keeps its graph: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = [4.8, 6.4]."""
    D = LinearD([3.0, 4.0])
    gradient_penalty(D, torch.randn(4, 2), torch.randn(4, 2)).backward()
    torch.testing.assert_close(D.w.grad, t([2 * 4 * 0.6, 2 * 4 * 0.8]))


# -------------------------------------------------------------- d_loss and g_loss

X_REAL = [[1.0, 0.0], [0.0, 1.0]]  # D = [3, 4]: mean 3.5
X_FAKE = [[2.0, 2.0], [-1.0, 0.0]]  # D = [14, -3]: mean 5.5


def test_d_loss_adds_weighted_penalty_and_logs():
    """WGAN-GP's D loss = (5.5 - 3.5) + 10 * (5 - 1)^2 = 162, with each part logged."""
    loss = WassersteinLoss(penalties={"gp": GradientPenalty(weight=10.0)})
    fake = t(X_FAKE).requires_grad_(True)
    value, logs = loss.d_loss(LinearD([3.0, 4.0]), t(X_REAL), fake)
    torch.testing.assert_close(value, torch.tensor(2.0 + 10.0 * 16.0))
    assert sorted(logs) == ["d/fake", "d/real", "gp", "loss/d"]
    torch.testing.assert_close(logs["d/real"], torch.tensor(3.5))
    torch.testing.assert_close(logs["d/fake"], torch.tensor(5.5))
    torch.testing.assert_close(logs["gp"], torch.tensor(16.0))
    torch.testing.assert_close(logs["loss/d"], torch.tensor(162.0))
    assert all(not v.requires_grad for v in logs.values())  # logs hold no graph
    value.backward()
    assert fake.grad is None  # D's loss never reaches G


def test_d_loss_without_penalties():
    """With no penalties D's loss is the bare objective and there is no penalty log."""
    value, logs = HingeLoss().d_loss(LinearD([3.0, 4.0]), t(X_REAL), t(X_FAKE))
    # relu(1 - [3, 4]) = 0; relu(1 + [14, -3]) = [15, 0] -> 7.5
    torch.testing.assert_close(value, torch.tensor(7.5))
    assert sorted(logs) == ["d/fake", "d/real", "loss/d"]
    torch.testing.assert_close(logs["loss/d"], torch.tensor(7.5))


def test_g_loss_logs_and_reaches_the_generator():
    """G's loss is logged as loss/g and its gradient flows through D into the fake batch."""
    fake = t(X_FAKE).requires_grad_(True)
    value, logs = WassersteinLoss(penalties={"gp": GradientPenalty()}).g_loss(
        LinearD([3.0, 4.0]), fake
    )
    torch.testing.assert_close(value, torch.tensor(-5.5))
    assert sorted(logs) == ["loss/g"]
    torch.testing.assert_close(logs["loss/g"], torch.tensor(-5.5))
    value.backward()
    # d/dx of -mean(w . x) over 2 samples = -w / 2 for each sample
    torch.testing.assert_close(fake.grad, t([[-1.5, -2.0], [-1.5, -2.0]]))


def test_objective_runs_in_float32_under_low_precision_logits():
    """bf16 logits from autocast are scored in float32 (the loss is not rounded to bf16)."""
    D = LinearD([3.0, 4.0]).to(torch.bfloat16)
    value, _ = LeastSquaresLoss().d_loss(D, t(X_REAL).bfloat16(), t(X_FAKE).bfloat16())
    assert value.dtype == torch.float32
    # 1/2 (mean([2^2, 3^2]) + mean([14^2, 3^2])) = 1/2 (6.5 + 102.5)
    torch.testing.assert_close(value, torch.tensor(54.5))


# -------------------------------------------------------------------- loss YAMLs

EXPECTED_CLASS = {
    "minimax": MinimaxLoss,
    "ns": NonSaturatingLoss,
    "wgan_gp": WassersteinLoss,
    "lsgan": LeastSquaresLoss,
    "hinge": HingeLoss,
    "wgan": ClippedWassersteinLoss,
    "dragan": NonSaturatingLoss,
    "rsgan": RelativisticStandardLoss,
    "ragan": RelativisticAverageLoss,
    "r3gan": RelativisticStandardLoss,  # RpGAN + R1 + R2 (R3GAN)
}
LOSS_FILES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))


@pytest.mark.parametrize("name", LOSS_FILES)
def test_loss_yaml_instantiates_expected_class(name):
    """conf/loss/<name>.yaml builds the class its name promises."""
    assert name in EXPECTED_CLASS, f"add conf/loss/{name}.yaml's class to EXPECTED_CLASS"
    loss = build_loss(compose_cfg(f"loss={name}"))
    assert type(loss) is EXPECTED_CLASS[name]
    assert isinstance(loss, AdversarialLoss)
    if name == "wgan_gp":
        assert sorted(loss.penalties) == ["gp"]
        assert type(loss.penalties["gp"]) is GradientPenalty
        assert (loss.penalties["gp"].weight, loss.penalties["gp"].center) == (10.0, 1.0)
    elif name == "dragan":
        assert sorted(loss.penalties) == ["dragan"]
        assert type(loss.penalties["dragan"]) is DraganPenalty
        assert loss.penalties["dragan"].weight == 10.0
    elif name == "r3gan":
        assert [type(loss.penalties[k]) for k in ("r1", "r2")] == [R1Penalty, R2Penalty]
        assert loss.penalties["r1"].weight == loss.penalties["r2"].weight == 1.0
    else:
        assert loss.penalties == {}
    if name == "lsgan":
        assert (loss.real_target, loss.fake_target) == (1.0, 0.0)


def test_every_expected_loss_has_a_yaml():
    """No loss class lost its YAML."""
    assert sorted(EXPECTED_CLASS) == LOSS_FILES


def test_gradient_penalty_with_low_precision_fakes():
    """Under autocast G's samples are bf16 while reals are float32: GP still works, exactly."""
    D, real = LinearD([3.0, 4.0]), torch.randn(4, 2)
    fake = torch.randn(4, 2).bfloat16()
    value = gradient_penalty(D, real, fake)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, torch.tensor(16.0))

"""The loss zoo: WGAN with weight clipping, DRAGAN, relativistic GANs, and the penalties any
objective can carry (one-sided GP, DRAGAN, R1, R2, lazy intervals).

Expected values are worked out by hand with `math` on fixed logits, or follow from a linear
critic D(x) = w . x whose input gradient is w everywhere; never from the torch code under test.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from conftest import compose_cfg
from rich.console import Console
from torch import nn

from ganrun.build import build_data, build_loss, build_state
from ganrun.losses.base import AdversarialLoss
from ganrun.losses.hinge import HingeLoss
from ganrun.losses.ns import NonSaturatingLoss
from ganrun.losses.penalties import (
    DraganPenalty,
    GradientPenalty,
    R1Penalty,
    R2Penalty,
    dragan_perturb,
    gradient_penalty,
)
from ganrun.losses.relativistic import RelativisticAverageLoss, RelativisticStandardLoss
from ganrun.losses.wgan import WassersteinLoss
from ganrun.losses.wgan_clip import ClippedWassersteinLoss
from ganrun.training.amp import autocast_factory
from ganrun.training.methods.gan import MicroBatch, d_step
from ganrun.training.train import train

REAL = [2.0, -1.0, 0.5]  # D's logits on a real batch (mean 0.5)
FAKE = [-0.5, 1.5, 0.0]  # D's logits on a generated batch (mean 1/3)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


MEAN_R, MEAN_F = mean(REAL), mean(FAKE)
# RSGAN: D: -E[log sigmoid(r - f)] over the pairs; G: -E[log sigmoid(f - r)]
RSGAN_D = -mean(math.log(sigmoid(r - f)) for r, f in zip(REAL, FAKE, strict=True))
RSGAN_G = -mean(math.log(sigmoid(f - r)) for r, f in zip(REAL, FAKE, strict=True))
# RaSGAN: D: -E[log sigmoid(r - E f)] - E[log(1 - sigmoid(f - E r))]; G: r and f swapped
RAGAN_D = -mean(math.log(sigmoid(r - MEAN_F)) for r in REAL) - mean(
    math.log(1.0 - sigmoid(f - MEAN_R)) for f in FAKE
)
RAGAN_G = -mean(math.log(sigmoid(f - MEAN_R)) for f in FAKE) - mean(
    math.log(1.0 - sigmoid(r - MEAN_F)) for r in REAL
)

CASES = {
    # name: (loss, expected d_objective, expected g_objective)
    # WGAN: E[D(G(z))] - E[D(x)] = 1/3 - 1/2; G: -E[D(G(z))] (clipping leaves the objective)
    "wgan": (ClippedWassersteinLoss(), 1.0 / 3 - 0.5, -1.0 / 3),
    "rsgan": (RelativisticStandardLoss(), RSGAN_D, RSGAN_G),
    "ragan": (RelativisticAverageLoss(), RAGAN_D, RAGAN_G),
}


def test_hand_numbers_are_what_they_claim():
    """The relativistic closed forms above, in decimals."""
    # (log(1 + e^-2.5) + log(1 + e^2.5) + log(1 + e^-0.5)) / 3
    assert math.isclose(RSGAN_D, 1.0439521509, rel_tol=1e-9)
    assert math.isclose(RSGAN_G, 1.2106188176, rel_tol=1e-9)
    assert math.isclose(RAGAN_D, 1.4847287549, rel_tol=1e-9)
    assert math.isclose(RAGAN_G, 1.8180620882, rel_tol=1e-9)


@pytest.mark.parametrize("name", sorted(CASES))
def test_objectives_match_hand_computation(name):
    """d_objective(real, fake) and g_objective(fake, real) equal the papers' losses."""
    loss, expected_d, expected_g = CASES[name]
    d_value = loss.d_objective(t(REAL), t(FAKE))
    g_value = loss.g_objective(t(FAKE), t(REAL))
    assert d_value.shape == g_value.shape == ()
    torch.testing.assert_close(d_value, torch.tensor(expected_d), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_value, torch.tensor(expected_g), rtol=1e-6, atol=1e-6)


def test_relativistic_losses_use_reals_in_g_and_others_do_not():
    assert RelativisticStandardLoss.uses_real_in_g and RelativisticAverageLoss.uses_real_in_g
    assert not ClippedWassersteinLoss.uses_real_in_g
    with pytest.raises(ValueError, match="logits on reals"):
        RelativisticStandardLoss().g_objective(t(FAKE))


# ---------------------------------------------------------------------------- critics


class LinearD(nn.Module):
    """D(x) = w . flatten(x): its input gradient is w everywhere, so ||grad|| = ||w||."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(t(w))
        self.seen: list[torch.Tensor] = []  # every input D was run on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return x.flatten(1) @ self.w


class QuadraticD(nn.Module):
    """D(x) = 1/2 ||x||^2: its input gradient is x, so ||grad D(x)||^2 = ||x||^2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)


X_REAL = [[1.0, 0.0], [0.0, 1.0]]  # D = [3, 4] with w = [3, 4]: mean 3.5
X_FAKE = [[2.0, 2.0], [-1.0, 0.0]]  # D = [14, -3]: mean 5.5


# ------------------------------------------------------------------ relativistic g_loss


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        # -E[log sigmoid(f - r)] on the pairs (14, 3) and (-3, 4)
        (
            RelativisticStandardLoss,
            -mean([math.log(sigmoid(14.0 - 3.0)), math.log(sigmoid(-3.0 - 4.0))]),
        ),
        # -E[log sigmoid(f - 3.5)] - E[log(1 - sigmoid(r - 5.5))]
        (
            RelativisticAverageLoss,
            -mean([math.log(sigmoid(14.0 - 3.5)), math.log(sigmoid(-3.0 - 3.5))])
            - mean([math.log(1.0 - sigmoid(3.0 - 5.5)), math.log(1.0 - sigmoid(4.0 - 5.5))]),
        ),
    ],
)
def test_relativistic_g_loss_runs_d_on_the_real_batch(cls, expected):
    """AdversarialLoss.g_loss with a real batch scores D(real) against D(fake), and G's
    gradient reaches the fakes only."""
    D, real = LinearD([3.0, 4.0]), t(X_REAL).requires_grad_(True)
    fake = t(X_FAKE).requires_grad_(True)
    value, logs = cls().g_loss(D, fake, real)
    assert len(D.seen) == 2  # D(real) and D(fake)
    torch.testing.assert_close(value, torch.tensor(expected))
    torch.testing.assert_close(logs["loss/g"], torch.tensor(expected))
    value.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert real.grad is None  # the reals are data, not a player


def test_relativistic_g_loss_needs_reals_and_d_loss_value():
    """Without a real batch G's relativistic loss refuses rather than guess; D's loss is
    -E[log sigmoid(r - f)] over the pairs."""
    loss, D = RelativisticStandardLoss(), LinearD([3.0, 4.0])
    with pytest.raises(ValueError, match="needs D's logits on reals"):
        loss.g_loss(D, t(X_FAKE))
    # D's loss: -E[log sigmoid(r - f)] on the pairs (3, 14) and (4, -3)
    value, _ = loss.d_loss(D, t(X_REAL), t(X_FAKE))
    expected = -mean([math.log(sigmoid(3.0 - 14.0)), math.log(sigmoid(4.0 + 3.0))])
    torch.testing.assert_close(value, torch.tensor(expected))


# ------------------------------------------------------------------------ WGAN clipping


def test_wgan_after_d_step_clamps_every_parameter():
    """Every D parameter ends in [-c, c], on both sides; values already inside stay put."""
    D = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        D[0].weight.copy_(t([[0.5, -0.5, 0.005], [-0.01, 0.0, 3.0]]))
        D[0].bias.copy_(t([-7.0, 0.002]))
        D[2].weight.copy_(t([[0.02, -0.003]]))
        D[2].bias.copy_(t([-0.02]))
    ClippedWassersteinLoss(clip=0.01).after_d_step(D)
    torch.testing.assert_close(D[0].weight, t([[0.01, -0.01, 0.005], [-0.01, 0.0, 0.01]]))
    torch.testing.assert_close(D[0].bias, t([-0.01, 0.002]))
    torch.testing.assert_close(D[2].weight, t([[0.01, -0.003]]))
    torch.testing.assert_close(D[2].bias, t([-0.01]))
    assert all(p.requires_grad for p in D.parameters())


def test_wgan_clip_must_be_positive():
    with pytest.raises(ValueError, match="clip=0"):
        ClippedWassersteinLoss(clip=0.0)
    assert isinstance(ClippedWassersteinLoss(), WassersteinLoss)
    assert ClippedWassersteinLoss().clip == 0.01


def test_wgan_d_step_leaves_d_clipped():
    """methods.gan.d_step calls after_d_step: after one RMSprop step D's weights lie in [-c, c]."""
    cfg = compose_cfg("loss=wgan", "optimizer=rmsprop", "model=mlp", "dataset=ring8")
    data, device = build_data(cfg), torch.device("cpu")
    state, loss = build_state(cfg, data.shape, device), build_loss(cfg)
    assert (
        max(p.abs().max().item() for p in state.players["D"].net.parameters()) > 0.01
    )  # init is wider
    real, _ = next(data.batches(8, 0, 0, device))
    z = torch.randn(8, cfg.model.z_dim)
    G, D = state.players["G"], state.players["D"]
    d_step(G, D, loss, [MicroBatch(real, None, z)], autocast_factory(device, "fp32"))
    top = max(p.abs().max().item() for p in state.players["D"].net.parameters())
    torch.testing.assert_close(top, 0.01)


# ------------------------------------------------------------------------------ R1 / R2


@pytest.mark.parametrize("w", [[3.0, 4.0], [1.0, 2.0, 2.0, 4.0], [0.0, 0.5, 0.0, 0.0]])
def test_r1_r2_on_a_linear_critic(w):
    """||grad D||^2 = ||w||^2 everywhere, so R1 = R2 = 1/2 ||w||^2; weight gamma scales it."""
    torch.manual_seed(0)
    D = LinearD(w)
    shape = (5, 2) if len(w) == 2 else (5, 1, 2, 2)
    real, fake = torch.randn(shape), torch.randn(shape)
    sq = sum(v * v for v in w)
    torch.testing.assert_close(R1Penalty(weight=10.0)(D, real, fake), torch.tensor(0.5 * sq))
    torch.testing.assert_close(R2Penalty(weight=10.0)(D, real, fake), torch.tensor(0.5 * sq))
    # in D's loss: + gamma / 2 ||w||^2
    value, logs = HingeLoss(penalties={"r1": R1Penalty(weight=10.0)}).d_loss(D, real, fake)
    bare, _ = HingeLoss().d_loss(D, real, fake)
    torch.testing.assert_close(value - bare, torch.tensor(10.0 / 2 * sq))
    torch.testing.assert_close(logs["r1"], torch.tensor(0.5 * sq))


def test_r1_is_on_reals_and_r2_on_fakes():
    """With D(x) = 1/2 ||x||^2, R1 = 1/2 E||real||^2 = 1/2 and R2 = 1/2 E||fake||^2 = 9/4."""
    D, real, fake = QuadraticD(), t(X_REAL), t(X_FAKE)
    torch.testing.assert_close(R1Penalty()(D, real, fake), torch.tensor(0.5 * (1.0 + 1.0) / 2))
    torch.testing.assert_close(R2Penalty()(D, real, fake), torch.tensor(0.5 * (8.0 + 1.0) / 2))


def test_r1_is_differentiable_in_the_critic():
    """d/dw 1/2 ||w||^2 = w."""
    D = LinearD([3.0, 4.0])
    R1Penalty()(D, torch.randn(4, 2), torch.randn(4, 2)).backward()
    torch.testing.assert_close(D.w.grad, t([3.0, 4.0]))


# ----------------------------------------------------------------------- one-sided GP


@pytest.mark.parametrize(
    ("w", "two_sided", "one_sided"),
    [
        ([3.0, 4.0], (5.0 - 1.0) ** 2, (5.0 - 1.0) ** 2),  # ||w|| = 5 > 1: both penalise
        ([0.3, 0.4], (0.5 - 1.0) ** 2, 0.0),  # ||w|| = 0.5 < 1: only two-sided does
        ([0.0, 1.5], 0.25, 0.25),
        ([0.0, 0.0, 0.0, 0.2], 0.64, 0.0),
    ],
)
def test_one_sided_gradient_penalty(w, two_sided, one_sided):
    """one_sided: max(0, ||w|| - 1)^2, zero below the unit norm, (||w|| - 1)^2 above."""
    torch.manual_seed(0)
    D = LinearD(w)
    shape = (6, 2) if len(w) == 2 else (6, 1, 2, 2)
    real, fake = torch.randn(shape), torch.randn(shape)
    for flag, expected in ((False, two_sided), (True, one_sided)):
        value = GradientPenalty(weight=10.0, one_sided=flag)(D, real, fake)
        torch.testing.assert_close(value, torch.tensor(expected))
        torch.testing.assert_close(
            gradient_penalty(D, real, fake, one_sided=flag), torch.tensor(expected)
        )
    assert GradientPenalty().one_sided is False


def test_one_sided_gp_center():
    """center c: max(0, ||w|| - c)^2 -> 0 for c = 6 and (5 - 2)^2 for c = 2."""
    D, x = LinearD([3.0, 4.0]), torch.randn(5, 2)
    torch.testing.assert_close(
        GradientPenalty(weight=1.0, center=6.0, one_sided=True)(D, x, x + 1), torch.tensor(0.0)
    )
    torch.testing.assert_close(
        GradientPenalty(weight=1.0, center=2.0, one_sided=True)(D, x, x + 1), torch.tensor(9.0)
    )


# ----------------------------------------------------------------------------- DRAGAN


@pytest.mark.parametrize(("w", "expected"), [([3.0, 4.0], 16.0), ([0.3, 0.4], 0.25)])
def test_dragan_penalty_on_a_linear_critic(w, expected):
    """The gradient of w.x is w everywhere, so DRAGAN's penalty is (||w|| - 1)^2."""
    torch.manual_seed(0)
    D, real = LinearD(w), torch.randn(6, 2)
    torch.testing.assert_close(DraganPenalty()(D, real, torch.randn(6, 2)), torch.tensor(expected))


def test_dragan_penalises_points_near_the_reals_not_the_fakes():
    """D sees x_hat = x + alpha * 0.5 * std(x) * u with alpha, u in [0, 1): off the reals,
    within half a batch std of them, and nowhere near the (far away) fakes."""
    torch.manual_seed(0)
    D, real = LinearD([3.0, 4.0]), torch.randn(16, 2)
    fake = torch.full((16, 2), 100.0)
    DraganPenalty(scale=0.5)(D, real, fake)
    (x_hat,) = D.seen
    offset = x_hat - real
    assert offset.abs().max().item() > 0.0  # perturbed, not the reals themselves
    assert offset.min().item() >= 0.0
    assert offset.max().item() <= 0.5 * real.std().item()
    # the raw perturbation: 0 <= x_p - x < scale * std(x), and it differs from x everywhere
    gap = dragan_perturb(real, scale=0.5) - real
    assert (gap > 0).all() and (gap < 0.5 * real.std()).all()
    gap2 = dragan_perturb(real, scale=2.0) - real
    assert (gap2 < 2.0 * real.std()).all() and gap2.max() > 0.5 * real.std()


# ----------------------------------------------------------------------- lazy penalties


def test_lazy_penalty_every_4():
    """every=4: D's loss adds 4 * weight * value on D steps 0, 4, 8 (logged), nothing on the
    steps in between (not logged)."""
    D, real, fake = LinearD([3.0, 4.0]), t(X_REAL), t(X_FAKE)
    loss = HingeLoss(penalties={"r1": R1Penalty(weight=2.0, every=4)})
    # hinge on D = [3, 4] and [14, -3]: relu(1 + 14) / 2 = 7.5; R1 = 1/2 * 25 = 12.5
    for step in range(10):
        value, logs = loss.d_loss(D, real, fake, d_step=step)
        if step % 4 == 0:
            torch.testing.assert_close(value, torch.tensor(7.5 + 4 * 2.0 * 12.5))
            torch.testing.assert_close(logs["r1"], torch.tensor(12.5))
        else:
            torch.testing.assert_close(value, torch.tensor(7.5))
            assert "r1" not in logs


@pytest.mark.parametrize("cls", [R1Penalty, R2Penalty, DraganPenalty, GradientPenalty])
def test_penalties_take_every(cls):
    assert cls(weight=1.0, every=4).every == 4
    with pytest.raises(ValueError, match="every=0"):
        cls(weight=1.0, every=0)


# ------------------------------------------------------------------------------- bf16


@pytest.mark.parametrize(
    ("penalty", "expected"),
    [
        (R1Penalty(), 12.5),
        (R2Penalty(), 12.5),
        (DraganPenalty(), 16.0),
        (GradientPenalty(one_sided=True), 16.0),
        (GradientPenalty(weight=1.0, center=6.0, one_sided=True), 0.0),
    ],
    ids=["r1", "r2", "dragan", "gp_one_sided", "gp_one_sided_below"],
)
def test_penalties_under_bf16_autocast(penalty, expected):
    """Under CPU bf16 autocast (fakes in bf16, reals float32) the values come out in float32
    and exact: w = [3, 4] is exact in bf16 and the norms are reduced in float32."""
    torch.manual_seed(0)
    D, real = LinearD([3.0, 4.0]), torch.randn(6, 2)
    fake = torch.randn(6, 2).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = penalty(D, real, fake)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, torch.tensor(expected))


# ------------------------------------------------------------------------------ YAMLs


def test_zoo_yamls_build_their_pieces():
    """loss=wgan|dragan|rsgan|ragan build the classes and penalties their files name."""
    wgan = build_loss(compose_cfg("loss=wgan"))
    assert type(wgan) is ClippedWassersteinLoss and wgan.clip == 0.01 and wgan.penalties == {}
    dragan = build_loss(compose_cfg("loss=dragan"))
    assert type(dragan) is NonSaturatingLoss
    assert sorted(dragan.penalties) == ["dragan"]
    pen = dragan.penalties["dragan"]
    assert type(pen) is DraganPenalty and (pen.weight, pen.scale, pen.every) == (10.0, 0.5, 1)
    for name, cls in (("rsgan", RelativisticStandardLoss), ("ragan", RelativisticAverageLoss)):
        loss = build_loss(compose_cfg(f"loss={name}"))
        assert type(loss) is cls and loss.uses_real_in_g and loss.penalties == {}


R1_FROM_CLI = (
    "+loss.penalties.r1._target_=ganrun.losses.penalties.R1Penalty",
    "+loss.penalties.r1.weight=10",
    "+loss.penalties.r1.every=2",
)


def test_penalties_added_from_the_command_line():
    """Any loss takes extra penalties as `+loss.penalties.<name>...` overrides."""
    loss = build_loss(
        compose_cfg(
            "loss=hinge",
            *R1_FROM_CLI,
            "+loss.penalties.lp._target_=ganrun.losses.penalties.GradientPenalty",
            "+loss.penalties.lp.one_sided=true",
            "+loss.penalties.dragan._target_=ganrun.losses.penalties.DraganPenalty",
            "+loss.penalties.dragan.weight=5",
        )
    )
    assert type(loss) is HingeLoss
    assert sorted(loss.penalties) == ["dragan", "lp", "r1"]
    r1, lp, dragan = (loss.penalties[k] for k in ("r1", "lp", "dragan"))
    assert type(r1) is R1Penalty and (r1.weight, r1.every) == (10.0, 2)
    assert type(lp) is GradientPenalty and (lp.weight, lp.one_sided) == (10.0, True)
    assert type(dragan) is DraganPenalty and dragan.weight == 5.0
    assert isinstance(loss, AdversarialLoss)
    # WGAN-LP: the shipped gradient penalty of loss=wgan_gp made one-sided
    lp = build_loss(compose_cfg("loss=wgan_gp", "+loss.penalties.gp.one_sided=true"))
    assert type(lp) is WassersteinLoss and lp.penalties["gp"].one_sided is True


# --------------------------------------------------------------------------- training


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


@pytest.mark.parametrize(
    "overrides",
    [
        ("loss=rsgan",),
        ("loss=ragan", "trainer.precision=bf16"),
        ("loss=wgan", "optimizer=rmsprop", "trainer.n_critic=5"),
        ("loss=dragan", "model=mlp", "dataset=ring8"),
        ("loss=rsgan", *R1_FROM_CLI[:2]),
    ],
    ids=["rsgan", "ragan_bf16", "wgan_rmsprop", "dragan", "rsgan_r1"],
)
def test_smoke_training_gives_finite_losses(overrides, tmp_path):
    """The smoke run trains with each zoo loss and logs finite values (penalties included)."""
    cfg = compose_cfg(*overrides)
    last = train(cfg, tmp_path / "run", overrides=["debug=smoke", *overrides], console=quiet())
    for key in ("loss/d", "loss/g", "d/real", "d/fake"):
        assert math.isfinite(last[key]), key
    assert all(math.isfinite(v) for v in last.values())
    for name in cfg.loss.penalties:  # dragan's and the command-line r1 are logged
        assert name in last and last[name] >= 0.0


# ------------------------------------------------------------------- label smoothing


def test_one_sided_label_smoothing_targets_real_label_for_reals_only():
    """real_label=0.9: D's loss is 0.9*(-log s(r)) + 0.1*(-log(1 - s(r))) - log(1 - s(f)), by hand."""
    from ganrun.losses.ns import NonSaturatingLoss

    r, f = 1.5, -0.5
    s_r, s_f = sigmoid(r), sigmoid(f)
    expected = -(0.9 * math.log(s_r) + 0.1 * math.log(1 - s_r)) - math.log(1 - s_f)
    value = NonSaturatingLoss(real_label=0.9).d_objective(t([r]), t([f]))
    torch.testing.assert_close(value, torch.tensor(expected))
    plain = NonSaturatingLoss().d_objective(t([r]), t([f]))
    torch.testing.assert_close(plain, torch.tensor(-math.log(s_r) - math.log(1 - s_f)))
    # G's objective is unchanged by smoothing
    torch.testing.assert_close(
        NonSaturatingLoss(real_label=0.9).g_objective(t([f])), torch.tensor(-math.log(s_f))
    )

"""augment=ada: the bgc ops on hand-checkable inputs, the adaptive p, R1 through the pipeline,
and a bit-exact resume that carries p."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganrun.augment import ada_color, ada_geometric
from ganrun.augment.ada import ADA
from ganrun.augment.ada_geometric import GeometricDraw, inverse_matrix, warp
from ganrun.augment.ada_tuner import AdaptiveP
from ganrun.augment.discriminator import AugmentedDiscriminator, real_logit_observer
from ganrun.errors import GanrunError
from ganrun.losses.penalties import R1Penalty

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def only(op: str, p: float = 1.0) -> ADA:
    """ADA at fixed p with every op's multiplier 0 except `op`'s."""
    return ADA(p=p, target=None, **{k: float(k == op) for k in GEOMETRIC + COLOR})


def draw(**given) -> GeometricDraw:
    """One image's geometric draw: identity values except `given`."""
    values = dict(
        flip=torch.zeros(1),
        quarter_turns=torch.zeros(1),
        shift_int=torch.zeros(1, 2),
        scale=torch.ones(1),
        theta_pre=torch.zeros(1),
        aniso=torch.ones(1),
        theta_post=torch.zeros(1),
        shift_frac=torch.zeros(1, 2),
    )
    values.update(
        {k: torch.as_tensor(v, dtype=torch.float32).view_as(values[k]) for k, v in given.items()}
    )
    return GeometricDraw(**values)


def ramp(n: int = 1, c: int = 1, size: int = 4) -> torch.Tensor:
    return torch.arange(n * c * size * size, dtype=torch.float32).view(n, c, size, size)


# --- adaptive p ----------------------------------------------------------------------------


def test_rt_above_target_raises_p_by_exactly_one_step():
    """4 D steps of 8 positive logits: r_t = 1 > 0.6, p += 8 * 4 / (0.5 * 1000) = 0.064, and
    only on the 4th step."""
    tuner = AdaptiveP(p=0.1, target=0.6, interval=4, kimg=0.5, p_max=0.8)
    for _ in range(3):
        logs = tuner.observe(torch.full((8, 1), 2.0))
        assert_close(logs["aug/p"], torch.tensor(0.1))
    logs = tuner.observe(torch.full((8, 1), 2.0))
    assert_close(logs["aug/p"], torch.tensor(0.1 + 0.064))
    assert_close(logs["aug/rt"], torch.tensor(1.0))


def test_rt_below_target_lowers_p_by_exactly_one_step():
    """6 positive and 2 negative logits per step: r_t = (6 - 2) / 8 = 0.5 < 0.6, p -= 0.064."""
    tuner = AdaptiveP(p=0.5, target=0.6, interval=4, kimg=0.5, p_max=0.8)
    logits = torch.tensor([1.0] * 6 + [-1.0] * 2)
    for _ in range(4):
        logs = tuner.observe(logits)
    assert_close(logs["aug/p"], torch.tensor(0.5 - 0.064))
    assert_close(logs["aug/rt"], torch.tensor(0.5))
    # r_t exactly at the target (sign 0): p stays
    at_target = AdaptiveP(p=0.5, target=0.5, interval=1, kimg=0.5)
    assert_close(at_target.observe(logits)["aug/p"], torch.tensor(0.5))


def test_p_is_capped_at_p_max_and_floored_at_zero():
    """Many intervals of a sure D take p to p_max = 0.3 and no further; an unsure D takes it
    to 0 and no further (stylegan2-ada-pytorch #175: uncapped p reached 21.8)."""
    tuner = AdaptiveP(p=0.0, target=0.6, interval=1, kimg=0.05, p_max=0.3)  # step 0.16
    trace = [tuner.observe(torch.ones(8))["aug/p"].item() for _ in range(5)]
    assert_close(torch.tensor(trace), torch.tensor([0.16, 0.3, 0.3, 0.3, 0.3]))
    trace = [tuner.observe(-torch.ones(8))["aug/p"].item() for _ in range(4)]
    assert_close(torch.tensor(trace), torch.tensor([0.14, 0.0, 0.0, 0.0]))


def test_fixed_p_mode_never_moves_p_but_logs_rt():
    ada = ADA(p=0.3, target=None, interval=1, kimg=0.001)
    for sign in (1.0, -1.0, 1.0):
        logs = ada.observe_real_logits(torch.full((8,), sign))
        assert_close(logs["aug/p"], torch.tensor(0.3))
        assert_close(logs["aug/rt"], torch.tensor(sign))


def test_tuner_state_round_trips_mid_interval():
    """p, the sign sums and the D steps since the last adjustment are state: a copy loaded
    after 2 of 4 steps adjusts on the same step, to the same p."""
    a = AdaptiveP(p=0.2, interval=4, kimg=0.5)
    for _ in range(2):
        a.observe(torch.ones(8))
    b = AdaptiveP(p=0.0, interval=4, kimg=0.5)
    b.load_state_dict(a.state_dict())
    for _ in range(2):
        pa, pb = a.observe(torch.ones(8))["aug/p"], b.observe(torch.ones(8))["aug/p"]
    assert torch.equal(pa, pb)
    assert_close(pb, torch.tensor(0.2 + 0.064))


# --- the ops -------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_is_exactly_the_identity(channels):
    torch.manual_seed(0)
    x = torch.randn(16, channels, 8, 8)
    assert torch.equal(ADA(p=0.0)(x), x)


def test_xflip_mirrors_or_keeps_each_image():
    """At p=1 each image is flipped with probability 1/2 (the op's own coin)."""
    torch.manual_seed(0)
    x = ramp(32, 1, 4)
    out = only("xflip")(x)
    flipped = [torch.allclose(o, i.flip(-1)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 5 < sum(flipped) < 27


def test_rotate90_is_a_quarter_turn_clockwise():
    """quarter_turns=1 turns x (right) towards y (down); the pixels move exactly."""
    x = ramp()
    assert torch.equal(warp(x, inverse_matrix(draw(quarter_turns=1))), torch.rot90(x, -1, (2, 3)))
    torch.manual_seed(0)
    xs = ramp(32, 1, 4)
    out = only("rotate90")(xs)
    turns = [
        [torch.equal(o, torch.rot90(i, -k, (1, 2))) for k in range(4)] for o, i in zip(out, xs)
    ]
    assert all(sum(t) == 1 for t in turns)
    assert {t.index(True) for t in turns} == {0, 1, 2, 3}


def test_integer_translation_shifts_with_reflection_at_the_edge():
    """shift (1, 0): every row moves one pixel right; column 0 reflects the edge pixel."""
    x = ramp()
    out = warp(x, inverse_matrix(draw(shift_int=[1.0, 0.0])))
    assert_close(out[..., 1:], x[..., :-1])
    assert_close(out[..., 0], x[..., 0])
    down = warp(x, inverse_matrix(draw(shift_int=[0.0, 2.0])))
    assert_close(down[..., 2:, :], x[..., :-2, :])


def test_integer_translation_draws_whole_pixels_within_range():
    """At p=1 on 16 px, shifts are whole pixels in [-2, 2] (xint_max 0.125 x 16)."""
    torch.manual_seed(0)
    d = ada_geometric.draw(256, 16, 16, torch.tensor(1.0), only("xint").geometric)
    assert torch.equal(d.shift_int, d.shift_int.round())
    assert d.shift_int.abs().max().item() == 2.0
    assert len(d.shift_int.unique()) == 5


def test_affine_composition_of_a_known_draw():
    """inverse_matrix is the inverse of the ops composed in the paper's order, op 1 first:
    G = T_frac R(post) A R(pre) S T_int R90 F."""
    f, k, ti, s, pre, a, post, tf = 1.0, 1.0, (2.0, -1.0), 2.0, 0.3, 1.5, -0.2, (0.5, 0.25)

    def rot(t):
        return torch.tensor(
            [[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]]
        )

    def shift(t):
        return torch.tensor([[1.0, 0, t[0]], [0, 1, t[1]], [0, 0, 1]])

    def sc(x, y):
        return torch.diag(torch.tensor([x, y, 1.0]))

    G = (
        shift(tf)
        @ rot(post)
        @ sc(a, 1 / a)
        @ rot(pre)
        @ sc(s, s)
        @ shift(ti)
        @ rot(k * math.pi / 2)
    )
    G = G @ sc(1 - 2 * f, 1)
    d = draw(
        flip=f, quarter_turns=k, shift_int=ti, scale=s, theta_pre=pre, aniso=a,
        theta_post=post, shift_frac=tf,
    )  # fmt: skip
    assert_close(inverse_matrix(d)[0], torch.linalg.inv(G), atol=1e-6, rtol=1e-5)


def test_isotropic_scale_by_two_magnifies_about_the_centre():
    """scale 2 on a linear ramp (bilinear is exact on it): value(x) = centre + (x - centre) / 2."""
    x = torch.arange(8.0).repeat(8, 1).view(1, 1, 8, 8)  # value = column index
    out = warp(x, inverse_matrix(draw(scale=2.0)))
    assert_close(out[0, 0, 0], (torch.arange(8.0) - 3.5) / 2 + 3.5)


def test_brightness_adds_and_contrast_scales():
    x = torch.randn(1, 3, 4, 4)
    assert_close(ada_color.apply(x, ada_color.brightness(torch.tensor([0.25]))), x + 0.25)
    assert_close(ada_color.apply(x, ada_color.contrast(torch.tensor([2.0]))), 2 * x)
    grey = torch.randn(1, 1, 4, 4)
    assert_close(ada_color.apply(grey, ada_color.brightness(torch.tensor([-0.5]))), grey - 0.5)
    # at p=1: one offset per image, spread by brightness_std = 0.2
    torch.manual_seed(0)
    xs = torch.randn(512, 3, 4, 4)
    shift = only("brightness")(xs) - xs
    assert_close(shift, shift[:, :1, :1, :1].expand_as(shift), atol=1e-6, rtol=0)
    assert 0.17 < shift[:, 0, 0, 0].std().item() < 0.23


def test_luma_flip_keeps_grey_grey_and_negates_its_luma():
    """Luma flip mirrors along (1, 1, 1): a grey pixel stays grey (r = g = b), at -x; the
    chroma of a colour pixel is kept: (0.5, 0, 0) -> (0.5, 0, 0) - 2/3 * 0.5 * (1, 1, 1)."""
    grey = torch.randn(1, 1, 4, 4)
    flip = ada_color.lumaflip(torch.ones(1))
    assert_close(ada_color.apply(grey.expand(1, 3, 4, 4), flip), -grey.expand(1, 3, 4, 4))
    assert_close(ada_color.apply(grey, flip), -grey)
    red = torch.tensor([0.5, 0.0, 0.0]).view(1, 3, 1, 1)
    assert_close(ada_color.apply(red, flip).flatten(), torch.tensor([1 / 6, -1 / 3, -1 / 3]))


def test_hue_and_saturation_keep_grey_and_act_on_colour():
    """Grey is on the luma axis: hue and saturation leave it. Hue by 120 degrees permutes the
    channels (r -> g -> b); saturation 0 gives each pixel its channel mean."""
    grey = torch.randn(1, 1, 4, 4).expand(1, 3, 4, 4)
    assert_close(ada_color.apply(grey, ada_color.hue(torch.tensor([1.234]))), grey)
    assert_close(ada_color.apply(grey, ada_color.saturation(torch.tensor([3.0]))), grey)
    x = torch.randn(1, 3, 4, 4)
    turned = ada_color.apply(x, ada_color.hue(torch.tensor([2 * math.pi / 3])))
    assert_close(turned, x[:, [2, 0, 1]], atol=1e-6, rtol=1e-5)
    flat = ada_color.apply(x, ada_color.saturation(torch.tensor([0.0])))
    assert_close(flat, x.mean(1, keepdim=True).expand_as(x), atol=1e-6, rtol=1e-5)


def test_one_channel_skips_hue_and_saturation():
    """On grey images hue and saturation draw nothing and change nothing, even at p=1."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 4, 4)
    for op in ("hue", "saturation"):
        before = torch.random.get_rng_state()
        out = ada_color.augment(x, torch.tensor(1.0), only(op).color)
        assert torch.equal(out, x)
        # an RGB batch draws the op's value and coin as well: the RNG ends elsewhere
        after_grey = torch.random.get_rng_state()
        torch.random.set_rng_state(before)
        ada_color.augment(x.expand(8, 3, 4, 4), torch.tensor(1.0), only(op).color)
        assert not torch.equal(torch.random.get_rng_state(), after_grey)


def test_full_pipeline_at_p_one_changes_every_image_and_keeps_the_shape():
    torch.manual_seed(0)
    x = torch.randn(16, 3, 16, 16)
    out = ADA(p=1.0, target=None)(x)
    assert out.shape == x.shape
    assert all(not torch.allclose(o, i) for o, i in zip(out, x))
    assert 0.1 < (out - x).abs().mean().item() < 5


# --- gradients -----------------------------------------------------------------------------


def test_gradients_and_double_backward_through_ada():
    """gradcheck and gradgradcheck of the whole pipeline at p=1 (the same draws each call):
    its input gradient, and the gradient of that gradient (R1), are exact."""
    ada = ADA(p=1.0, target=None)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)

    def seeded(inp):
        torch.manual_seed(0)
        return ada(inp)

    assert torch.autograd.gradcheck(seeded, (x,))
    assert torch.autograd.gradgradcheck(seeded, (x,))


def test_r1_through_ada_reaches_d_weights():
    """R1 on D(ADA(x)): a positive value whose backward (double backward through the warp)
    gives D's weights finite, non-zero gradients equal to a finite-difference estimate (R1
    sums its squared norm in float32, hence the tolerance)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(4 * 64, 1)
    )
    D = AugmentedDiscriminator(net, ADA(p=1.0, target=None)).double()
    real = torch.randn(4, 1, 8, 8, dtype=torch.float64)

    def r1(weight):
        with torch.no_grad():
            net[3].weight.copy_(weight)
        torch.manual_seed(1)
        return R1Penalty(weight=1.0)(D, real, real)

    w = net[3].weight.detach().clone()
    value = r1(w)
    assert 0 < value.item() < 1e3
    value.backward()
    grad = net[3].weight.grad[0, :3].clone()
    assert grad.abs().sum() > 0
    eps = 1e-2  # R1 is quadratic in the last layer's weight: central differences are exact
    fd = []
    for i in range(3):
        up, down = w.clone(), w.clone()
        up[0, i] += eps
        down[0, i] -= eps
        fd.append((r1(up) - r1(down)).item() / (2 * eps))
    assert_close(grad, torch.tensor(fd, dtype=torch.float64), rtol=1e-3, atol=1e-6)


# --- the hook and config -------------------------------------------------------------------


def test_only_ada_observes_real_logits():
    from ganrun.augment.diffaugment import DiffAugment

    net = nn.Flatten()
    assert real_logit_observer(net) is None
    assert real_logit_observer(AugmentedDiscriminator(net, DiffAugment())) is None
    ada = ADA()
    assert real_logit_observer(AugmentedDiscriminator(net, ada)) == ada.observe_real_logits


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"p_max": 1.5}, "augment.p_max=1.5"),
        ({"p": 0.9}, "augment.p=0.9"),
        ({"target": 1.0}, "augment.target=1.0"),
        ({"interval": 0}, "augment.interval=0"),
        ({"kimg": 0}, "augment.kimg=0"),
        ({"scale_std": -1.0}, "augment.scale_std=-1.0"),
        ({"xlfip": 1.0}, "xlfip"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(GanrunError, match=key.replace(".", r"\.")):
        ADA(**kwargs)


def test_bad_inputs_are_refused():
    with pytest.raises(GanrunError, match="ring8"):
        ADA()(torch.randn(4, 2))
    with pytest.raises(GanrunError, match="these have 4"):
        ADA()(torch.randn(2, 4, 8, 8))
    assert ADA(**{k: 0.0 for k in COLOR})(torch.randn(2, 4, 8, 8)).shape == (2, 4, 8, 8)


# --- in training ---------------------------------------------------------------------------

# p moves 8 images / (0.1 * 1000) = 0.08 per D step: visible within the smoke run's 4 steps
FAST = ("augment=ada", "augment.p=0.4", "augment.interval=1", "augment.kimg=0.1")


def test_resume_with_ada_is_bit_exact_and_logs_p(tmp_path):
    """Run 4 steps, resume the step-2 checkpoint: same players, RNG and ADA state (p, r_t,
    sign sums) bit for bit; aug/p and aug/rt in metrics.jsonl, p stepping by exactly 0.08."""
    from test_train import TENSOR_KEYS, assert_bit_equal, load, run_and_resume

    a, b, rows_a, rows_b = run_and_resume(tmp_path, *FAST)
    for key in (*TENSOR_KEYS, "augment"):
        assert_bit_equal(a[key], b[key], key)
    assert not any(k.startswith(("module.", "augment.")) for k in a["players"]["D"]["net"])
    assert_close(a["augment"]["D"]["tuner.p"], torch.tensor(rows_a[-1]["aug/p"]))
    assert [r["aug/p"] for r in rows_b] == [r["aug/p"] for r in rows_a[2:]]
    assert [r["aug/rt"] for r in rows_b] == [r["aug/rt"] for r in rows_a[2:]]
    trace = torch.tensor([0.4] + [r["aug/p"] for r in rows_a])
    assert_close(trace.diff().abs(), torch.full((4,), 0.08))
    for row in rows_a:
        assert -1.0 <= row["aug/rt"] <= 1.0
    # p at step 2 is in the step-2 checkpoint
    step2 = load(tmp_path / "a" / "checkpoints" / "step_0000002.pt")
    assert_close(step2["augment"]["D"]["tuner.p"], torch.tensor(rows_a[1]["aug/p"]))


def test_fixed_p_run_keeps_p(make_cfg):
    """target=null: the config's p throughout a step (logged), D and G still train."""
    from test_config import train_one_step

    _, d_change, g_change, logs, built = train_one_step(
        make_cfg("augment=ada", "augment.target=null", "augment.p=0.3")
    )
    assert_close(torch.tensor(logs["aug/p"]), torch.tensor(0.3))
    assert 0 < max(d_change.values()) < 1 and 0 < max(g_change.values()) < 1


def test_diffaugment_logs_and_checkpoints_are_unchanged(make_cfg):
    """Only a tuning augmentation adds aug/* logs and the 'augment' checkpoint component."""
    from test_config import train_one_step

    _, _, _, logs, built = train_one_step(make_cfg("augment=diffaugment"))
    assert set(logs) == {"d/fake", "d/real", "loss/d", "loss/g"}
    assert "augment" not in built["state"].components


def _tuner_worker(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
    try:
        tuner = AdaptiveP(p=0.5, target=0.6, interval=1, kimg=0.1)
        # rank 0 alone would see r_t = 1 (raise p), rank 1 alone r_t = 0.5 (lower it); over
        # both ranks r_t = (8 + 4) / 16 = 0.75 > 0.6: both raise p by 16 / 100
        logits = torch.ones(8) if rank == 0 else torch.tensor([1.0] * 6 + [-1.0] * 2)
        torch.save(tuner.observe(logits), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_p_moves_on_the_statistics_of_all_ranks(tmp_path):
    """Under DDP the sign sums are all-reduced before p moves: every rank gets the same p,
    stepped by the global number of images."""
    import torch.multiprocessing as mp

    mp.spawn(_tuner_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    logs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for rank_logs in logs:
        assert_close(rank_logs["aug/p"], torch.tensor(0.5 + 0.16))
        assert_close(rank_logs["aug/rt"], torch.tensor(0.75))

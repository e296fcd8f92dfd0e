"""StyleGAN2 (models/stylegan2/, losses/path_length.py, truncation plumbing): shapes, the ops
against hand computations, double backward, style mixing, w_avg, truncation, resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_train import TENSOR_KEYS, assert_bit_equal, load, run_and_resume
from torch import nn
from torch.testing import assert_close

import ganrun
from ganrun.augment.diffaugment import DiffAugment
from ganrun.augment.discriminator import AugmentedDiscriminator
from ganrun.errors import GanrunError
from ganrun.losses.path_length import PathLengthRegulariser, path_lengths
from ganrun.losses.penalties import R1Penalty
from ganrun.models.dcgan import DCGANGenerator
from ganrun.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from ganrun.models.stylegan2.discriminator import group_size_for, minibatch_stddev
from ganrun.models.stylegan2.ops import downsample2d, fir_kernel, upsample2d
from ganrun.models.stylegan2.synthesis import demodulation, modulated_conv2d
from ganrun.sampling.generate import generate

Z = 16  # latent size of the tiny test models


def tiny(shape, **kw):
    torch.manual_seed(0)
    G = StyleGAN2Generator(shape, z_dim=Z, width=8, mapping_layers=2, **kw)
    D = StyleGAN2Discriminator(shape, width=8, mapping_layers=2, num_classes=kw.get("num_classes"))
    return G, D


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "shape", [(1, 16, 16), (3, 16, 16), (1, 32, 32), (3, 32, 32), (3, 64, 64), (1, 256, 256)]
)
def test_shapes_at_several_resolutions(shape):
    """G: (B, z) -> (B, C, R, R) with 2 log2(R) - 2 style layers; D: images -> (B,) logits."""
    G, D = tiny(shape, mixing_prob=0.0)
    x = G(torch.randn(4, Z))
    assert x.shape == (4, *shape)
    assert G.num_ws == 2 * int(math.log2(shape[1])) - 2
    assert D(x).shape == (4,)


def test_bf16_autocast_forward_and_backward():
    """Under CPU bf16 autocast (trainer.precision=bf16) G and D run, w_avg stays float32."""
    G, D = tiny((3, 16, 16), num_classes=10)
    y = torch.tensor([1, 2, 3, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = D(G(torch.randn(4, Z), y), y)
    out.float().sum().backward()
    assert out.shape == (4,) and torch.isfinite(out.float()).all()
    assert G.mapping.w_avg.dtype == torch.float32 and G.mapping.w_avg.abs().max() > 0


def test_conditional_shapes_and_labels_matter():
    """num_classes: the label enters G's mapping and D's projection; other labels, other outputs."""
    G, D = tiny((3, 32, 32), num_classes=10)
    G.eval()
    z = torch.randn(1, Z).repeat(2, 1)
    y = torch.tensor([2, 7])
    x = G(z, y)
    assert x.shape == (2, 3, 32, 32)
    assert (x[0] - x[1]).abs().max() > 1e-4
    logits = D(x[:1].repeat(2, 1, 1, 1), y)
    assert logits.shape == (2,) and (logits[0] - logits[1]).abs() > 1e-6


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8), (2, 32, 32), (2,)])
def test_unsupported_shapes_fail_clearly(shape):
    with pytest.raises(GanrunError, match=r"model=stylegan2|square images"):
        StyleGAN2Generator(shape, z_dim=Z, width=8)


# ------------------------------------------------------------------------------- ops


def test_fir_upsample_against_hand_computation():
    """[1, 3, 3, 1] upsampling of a corner impulse: per axis [0.75, 0.75, 0.25, 0] (zero
    insertion, pad (2, 1), taps x 2 / 8); separable, so the 2-D result is the outer product."""
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0] = 1.0
    a = torch.tensor([0.75, 0.75, 0.25, 0.0])
    assert_close(upsample2d(x, fir_kernel())[0, 0], torch.outer(a, a))
    ones = torch.ones(1, 2, 6, 6)  # a constant stays constant away from the border
    assert_close(upsample2d(ones, fir_kernel())[:, :, 2:-2, 2:-2], torch.ones(1, 2, 8, 8))


def test_fir_downsample_against_hand_computation():
    """Impulses at 1-D positions 0 and 1 of 4 give [3/8, 0] and [3/8, 1/8] (pad 1, stride 2)."""
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 1] = 1.0  # row 0, column 1
    rows, cols = torch.tensor([3 / 8, 0.0]), torch.tensor([3 / 8, 1 / 8])
    assert_close(downsample2d(x, fir_kernel())[0, 0], torch.outer(rows, cols))


def test_modulated_conv_with_unit_styles_and_no_demodulation_is_a_plain_conv():
    torch.manual_seed(1)
    x, w = torch.randn(3, 5, 6, 6), torch.randn(4, 5, 3, 3)
    out = modulated_conv2d(x, w, torch.ones(3, 5), demodulate=False, padding=1)
    assert_close(out, F.conv2d(x, w, padding=1))


def test_demodulation_gives_unit_norm_weights_and_equals_per_sample_convs():
    """The per-sample weights w * s / ||w * s|| have unit norm per output channel, and the
    modulated conv equals convolving each sample with its own weights."""
    torch.manual_seed(2)
    x, w, s = torch.randn(3, 5, 6, 6), torch.randn(4, 5, 3, 3), torch.randn(3, 5)
    per_sample = w[None] * s[:, None, :, None, None]
    per_sample = per_sample * demodulation(w, s)[:, :, None, None, None]
    assert_close(per_sample.square().sum(dim=(2, 3, 4)), torch.ones(3, 4))
    by_hand = torch.cat([F.conv2d(x[i : i + 1], per_sample[i], padding=1) for i in range(3)])
    assert_close(modulated_conv2d(x, w, s, demodulate=True, padding=1), by_hand)


def test_upsampling_modulated_conv_is_upsample_then_conv_away_from_the_border():
    """NVlabs' order (transposed conv at stride 2, then the FIR filter) equals FIR upsampling
    followed by the (flipped) 3x3 convolution, except in the 2-pixel border."""
    torch.manual_seed(3)
    x, w, s = torch.randn(2, 3, 8, 8), torch.randn(5, 3, 3, 3), torch.randn(2, 3)
    fused = modulated_conv2d(x, w, s, True, padding=1, up_kernel=fir_kernel())
    plain = modulated_conv2d(upsample2d(x, fir_kernel()), w.flip(2, 3), s, True, padding=1)
    assert fused.shape == (2, 5, 16, 16)
    assert_close(fused[..., 2:-2, 2:-2], plain[..., 2:-2, 2:-2])


def test_minibatch_stddev_by_hand():
    """Group size 2 over 4 samples: sample i pairs with i + 2; the std is per pair."""
    x = torch.arange(4 * 2 * 1 * 1, dtype=torch.float32).reshape(4, 2, 1, 1)
    out = minibatch_stddev(x, group_size=2)
    # pairs (0, 2) and (1, 3) differ by 4 in every feature: std (population) 2
    assert_close(out[:, 2].flatten(), torch.full((4,), 2.0), atol=1e-4, rtol=0)
    assert group_size_for(8, 32) == 8 and group_size_for(12, 8) == 6 and group_size_for(7, 4) == 1


# ------------------------------------------------------------ style mixing, w_avg


def test_style_mixing_follows_its_probability_and_never_in_eval():
    """prob 1: the last layer always comes from the second latent; prob 0: never; prob 0.5:
    about half the forwards mix; eval mode never mixes."""
    G, _ = tiny((1, 16, 16), mixing_prob=1.0)
    z = torch.randn(4, Z)
    ws = G.styles(z)
    assert (ws[:, -1] - ws[:, 0]).abs().max() > 1e-4
    assert_close(ws[:, :1].expand_as(ws)[:, :1], ws[:, :1])
    G.mixing_prob = 0.0
    ws = G.styles(z)
    assert_close(ws, ws[:, :1].expand_as(ws))
    G.mixing_prob = 0.5
    torch.manual_seed(3)
    mixed = sum(bool((G.styles(z)[:, -1] != G.styles(z)[:, 0]).any()) for _ in range(200))
    assert 70 < mixed < 130  # Binomial(200, 0.5): 100 +- 30 is beyond 4 standard deviations
    G.mixing_prob = 1.0
    G.eval()
    ws = G.styles(z)
    assert_close(ws, ws[:, :1].expand_as(ws))


def test_mixing_probability_changes_training_outputs_for_a_fixed_seed():
    G, _ = tiny((1, 16, 16), mixing_prob=0.0)
    z = torch.randn(4, Z)
    torch.manual_seed(5)
    plain = G(z)
    G.mixing_prob = 1.0
    torch.manual_seed(5)
    assert (G(z) - plain).abs().max() > 1e-4


def test_w_avg_tracks_the_mean_w_with_decay_0995():
    G, _ = tiny((1, 16, 16), mixing_prob=0.0)
    z = torch.randn(8, Z)
    G.eval()
    w = G.mapping(z)
    assert_close(G.mapping.w_avg, torch.zeros(Z))  # eval forwards do not move it
    G.train()
    G.mapping(z)
    assert_close(G.mapping.w_avg, 0.005 * w.mean(dim=0))


# ------------------------------------------------------------------------ truncation


def test_truncation_psi_0_gives_the_w_avg_image_and_psi_1_the_plain_one():
    G, _ = tiny((3, 16, 16))
    G.train()
    for _ in range(3):
        G(torch.randn(8, Z))  # w_avg away from 0
    G.eval()
    z = torch.randn(4, Z)
    w_avg_image = G.synthesis(G.mapping.w_avg.expand(1, G.num_ws, -1)).detach()
    assert_close(generate(G, z, 2, truncation=0.0), w_avg_image.expand(4, -1, -1, -1))
    assert_close(generate(G, z, 4, truncation=1.0), generate(G, z, 4), rtol=0, atol=0)
    # cutoff k: only the first k layers are pulled to w_avg
    ws = G.styles(z)
    ws_cut = torch.cat([G.mapping.w_avg.expand(4, 2, -1), ws[:, 2:]], dim=1)
    assert_close(generate(G, z, 4, truncation=0.0, truncation_cutoff=2), G.synthesis(ws_cut))


def test_truncation_is_refused_for_a_generator_without_it():
    G = DCGANGenerator((1, 16, 16), z_dim=Z, width=8).eval()
    with pytest.raises(GanrunError, match=r"truncation=0.7.*no truncation trick"):
        generate(G, torch.randn(2, Z), 2, truncation=0.7)
    with pytest.raises(GanrunError, match="truncation_cutoff=2 without truncation"):
        generate(G, torch.randn(2, Z), 2, truncation_cutoff=2)


# ------------------------------------------------------- regularisers, double backward


class LinearStyles(nn.Module):
    """A style-based 'generator' with a known Jacobian: image = sum_l A_l ws_l."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.A = nn.Parameter(torch.randn(2, 4, 3))  # (layers, pixels, w_dim)

    def styles(self, z, y=None):
        return z.view(-1, 2, 3)

    def synthesis(self, ws):
        return torch.einsum("lpw,blw->bp", self.A, ws).view(-1, 1, 2, 2)


def test_path_lengths_against_the_jacobian_by_hand():
    """||J^T u|| = sqrt(mean_l ||A_l^T u||^2) with u ~ N(0, 1) / sqrt(H W)."""
    net = LinearStyles()
    z = torch.randn(3, 6, requires_grad=True)
    torch.manual_seed(11)
    lengths = path_lengths(net, z, None)
    torch.manual_seed(11)
    u = torch.randn(3, 1, 2, 2).view(3, 4) / 2.0
    jtu = torch.einsum("lpw,bp->blw", net.A.detach(), u)
    assert_close(lengths, jtu.square().sum(2).mean(1).sqrt())


def test_path_length_regulariser_value_state_and_double_backward():
    """pl_mean moves 0 -> 0.01 x mean length; the value is E[(length - pl_mean)^2] on half the
    batch; its gradient reaches G's weights (double backward through the synthesis)."""
    G, _ = tiny((1, 16, 16))
    reg = PathLengthRegulariser()
    z = torch.randn(8, Z)
    torch.manual_seed(4)
    lengths = path_lengths(G, z[:4], None).detach()
    torch.manual_seed(4)
    value = reg(G, G, z)
    assert_close(reg.pl_mean, 0.01 * lengths.mean())
    assert_close(value.detach(), (lengths - 0.01 * lengths.mean()).square().mean())
    value.backward()
    grads = [p.grad for p in G.synthesis.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert max(g.abs().max() for g in grads) > 0
    state = reg.state_dict()
    fresh = PathLengthRegulariser()
    fresh.load_state_dict(state)
    assert_close(fresh.pl_mean, reg.pl_mean)


def test_path_length_uses_the_bound_labels_of_a_conditional_generator():
    import functools

    G, _ = tiny((1, 16, 16), num_classes=10)
    reg = PathLengthRegulariser(batch_shrink=1)
    z = torch.randn(4, Z)
    values = []
    for y in (torch.zeros(4, dtype=torch.long), torch.full((4,), 9)):
        reg.pl_mean = torch.zeros(())
        torch.manual_seed(0)
        values.append(reg(functools.partial(G, y=y), G, z).detach())
    assert (values[0] - values[1]).abs() > 0


def test_path_length_needs_a_style_based_generator():
    G = DCGANGenerator((1, 16, 16), z_dim=Z, width=8)
    with pytest.raises(GanrunError, match="model=stylegan2"):
        PathLengthRegulariser()(G, G, torch.randn(2, Z))


def test_r1_double_backward_through_diffaugment():
    """R1 = gamma/2 E||grad D(aug(x))||^2 is differentiable in D's weights."""
    _, D = tiny((3, 16, 16))
    D_aug = AugmentedDiscriminator(D, DiffAugment())
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    value = R1Penalty(weight=0.01, every=16)(D_aug, real, real)
    assert value.item() > 0
    value.backward()
    # every weight but the output bias, which the input gradient does not depend on
    without = [n for n, p in D.named_parameters() if p.grad is None]
    assert without == ["out.bias"]
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert max(g.abs().max() for g in grads) > 0


# ---------------------------------------------------------------------------- resume


PL = "+method.g_regularisers.pl._target_=ganrun.losses.path_length.PathLengthRegulariser"


def test_resume_is_bit_exact_with_path_length_state(tmp_path):
    """2 steps + 2 resumed = 4 steps bit for bit, with path length every 2 G steps (so it runs
    again after the resume and needs the checkpointed pl_mean) and lazy R1."""
    overrides = (
        "model=stylegan2",
        "model.z_dim=16",
        PL,
        "+method.g_regularisers.pl.every=2",
        "+loss.penalties.r1._target_=ganrun.losses.penalties.R1Penalty",
        "+loss.penalties.r1.every=2",
        "method.lazy_regularisation_correction=true",
        "trainer.sample_truncation=0.7",
    )
    a, b, rows_a, rows_b = run_and_resume(tmp_path, *overrides)
    for key in (*TENSOR_KEYS, "method"):
        assert_bit_equal(a[key], b[key], key)
    pl_mean = a["method"]["g_regularisers"]["pl"]["pl_mean"]
    assert pl_mean.item() > 0
    step2 = load(tmp_path / "a" / "checkpoints" / "step_0000002.pt")
    assert step2["method"]["g_regularisers"]["pl"]["pl_mean"].item() != pl_mean.item()
    assert [r["loss/g"] for r in rows_a[2:]] == [r["loss/g"] for r in rows_b]
    assert (tmp_path / "a" / "samples" / "0000004.png").is_file()
    # ganrun.load / ganrun sample: psi=0 draws the w_avg image whatever the seed
    g = ganrun.load(tmp_path / "a")
    assert_close(g.sample(2, seed=0, truncation=0.0), g.sample(2, seed=1, truncation=0.0))
    assert (g.sample(2, seed=0) - g.sample(2, seed=1)).abs().max() > 1e-4
    assert_close(g.sample(2, seed=0, truncation=1.0), g.sample(2, seed=0))

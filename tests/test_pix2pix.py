"""method=pix2pix: U-Net shapes and structure, the L1 term and G's loss by hand, penalties."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from test_methods import built

from ganrun.errors import GanrunError
from ganrun.models.unet import UNetGenerator, halvings
from ganrun.training.methods.pix2pix import l1_term

CPU = torch.device("cpu")


@pytest.mark.parametrize(("resolution", "depth"), [(16, 4), (32, 5), (64, 6), (128, 7), (256, 8)])
def test_unet_depth_follows_the_resolution(resolution, depth):
    """Down to 1x1 at every power of two from 16 to 256 px; grey in, RGB out, tanh range."""
    G = UNetGenerator((3, resolution, resolution), in_channels=1, width=2)
    assert G.depth == depth
    y = G(torch.randn(2, 1, resolution, resolution))
    assert tuple(y.shape) == (2, 3, resolution, resolution)
    assert -1.0 <= y.min().item() and y.max().item() <= 1.0


def test_unet_dropout_sits_in_the_three_levels_inside_the_innermost():
    """256 px: 3 Dropout(0.5) layers (the paper's unet_256); 16 px: the 2 inner levels that
    exist outside the innermost and outermost; dropout=0 removes them."""

    def drops(G):
        return [m.p for m in G.modules() if isinstance(m, torch.nn.Dropout)]

    assert drops(UNetGenerator((3, 256, 256), width=2)) == [0.5] * 3
    assert drops(UNetGenerator((1, 16, 16), width=2)) == [0.5] * 2
    assert drops(UNetGenerator((1, 16, 16), width=2, dropout=0.0)) == []


def test_unet_skip_connections_carry_the_input():
    """The outermost up-conv reads cat(first encoder map, decoder map): 2 x width channels;
    with the innermost half of the net zeroed the output still depends on the input."""
    G = UNetGenerator((1, 16, 16), width=4, dropout=0.0).eval()
    assert G.net.up[1].in_channels == 8
    for p in G.net.sub.sub.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 1, 16, 16)
    assert not torch.allclose(G(x), G(torch.zeros_like(x)))


def test_unet_residual_adds_the_source_to_the_correction():
    """residual=true: output = source (a grey one copied to each channel) + the last up-conv's
    output, no tanh; with that conv zeroed the net is the baseline exactly (bicubic, grey)."""
    for source, channels in ((3, 3), (1, 3)):
        G = UNetGenerator((channels, 16, 16), in_channels=source, width=4, residual=True).eval()
        assert not any(isinstance(m, torch.nn.Tanh) for m in G.modules())
        x = torch.rand(2, source, 16, 16) * 2 - 1
        last = G.net.up[1]
        correction = G(x) - x.expand(-1, channels, -1, -1)
        assert 1e-4 < correction.abs().mean().item() < 1.0
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        assert torch.equal(G(x), x.expand(-1, channels, -1, -1))
        last.bias.data.fill_(0.25)  # the correction adds as it is: no squashing
        assert torch.allclose(G(x), x.expand(-1, channels, -1, -1) + 0.25)
    assert any(isinstance(m, torch.nn.Tanh) for m in UNetGenerator((3, 16, 16)).modules())
    with pytest.raises(GanrunError, match="generator.residual=true"):
        UNetGenerator((3, 16, 16), in_channels=2, residual=True)


def test_unet_norms_and_refusals():
    assert any(
        isinstance(m, torch.nn.InstanceNorm2d)
        for m in UNetGenerator((1, 16, 16), norm="instance").modules()
    )
    assert not any(
        isinstance(m, torch.nn.BatchNorm2d)
        for m in UNetGenerator((1, 16, 16), norm="instance").modules()
    )
    assert (halvings(28), halvings(7)) == (2, 0)
    with pytest.raises(GanrunError, match="generator.depth"):
        UNetGenerator((1, 7, 7))
    with pytest.raises(GanrunError, match="generator.norm='group'"):
        UNetGenerator((1, 16, 16), norm="group")


def test_l1_term_by_hand():
    """|0 - 0.5| everywhere but one pixel of 4 where |1 - (-1)| = 2: (3 x 0.5 + 2) / 4."""
    fake = torch.tensor([0.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
    target = torch.tensor([0.5, -0.5, 0.5, -1.0]).view(1, 1, 2, 2)
    torch.testing.assert_close(l1_term(fake, target), torch.tensor(0.875))


def test_step_g_loss_is_the_gan_loss_plus_100_l1():
    """One step on (a, b): l1 = mean |G(a) - b| with G before the step and the step's
    dropout draws; loss/g_gan = softplus(-D(cat(a, G(a)))) (loss=ns) with D after its
    update; loss/g = loss/g_gan + 100 l1."""
    cfg, data, method, state = built("pix2pix")
    G = copy.deepcopy(state.players["G"].net)
    a, b = next(data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU))
    torch.manual_seed(5)
    logs = method.step(state, data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU), 0)
    torch.manual_seed(5)
    with torch.no_grad():
        fake = G(a)
        logits = state.players["D"].net(torch.cat([a, fake], 1))
    torch.testing.assert_close(logs["l1"], (fake - b).abs().mean())
    torch.testing.assert_close(logs["loss/g_gan"], F.softplus(-logits).mean())
    torch.testing.assert_close(logs["loss/g"], logs["loss/g_gan"] + 100 * logs["l1"])


@pytest.mark.parametrize(
    ("overrides", "logged"),
    [
        (["loss=wgan_gp", "trainer.n_critic=2"], "gp"),
        (["+loss.penalties.r1._target_=ganrun.losses.penalties.R1Penalty"], "r1"),
        (["loss=hinge"], "loss/d"),
    ],
)
def test_penalties_and_losses_step(overrides, logged):
    """Zoo losses and penalties on the conditional D: finite, logged; n_critic=2 draws two batches."""
    cfg, data, method, state = built("pix2pix", *overrides)
    drawn = []

    def batches():
        for batch in data.batches(8, 0, 0, CPU):
            drawn.append(1)
            yield batch

    logs = method.step(state, batches(), 0)
    assert logged in logs and all(torch.isfinite(v) for v in logs.values())
    assert len(drawn) == cfg.trainer.n_critic


def test_ema_option_gives_g_a_copy_that_translates():
    _, data, method, state = built("pix2pix", "method.ema=true")
    assert state.players["G"].ema is not None and state.players["D"].ema is None
    a = method.sample_inputs(3, 0)["a"]
    ema_out = method.translator(state)(a)
    with torch.no_grad():
        torch.testing.assert_close(ema_out, state.players["G"].ema(a))


def test_refusals_name_the_key():
    with pytest.raises(GanrunError, match="trainer.accumulate=2"):
        built("pix2pix", "trainer.accumulate=2")
    with pytest.raises(GanrunError, match="method.lambda_l1=-1"):
        built("pix2pix", "method.lambda_l1=-1")


def test_refuses_data_that_is_not_paired_translation_data():
    """Digits (images and labels) for either method, unpaired data for pix2pix."""
    from conftest import SHARED_DATA, compose_cfg, has_mnist

    from ganrun.build import build_data, build_method

    cases = [("pix2pix", ["dataset=digits"], "needs translation data")]
    cases.append(("cyclegan", ["dataset=digits"], "needs translation data"))
    if has_mnist():
        unpaired = [
            "dataset=colored_mnist_pair",
            f"dataset.root='{SHARED_DATA}'",
            "dataset.test_size=10",
        ]
        cases.append(("pix2pix", unpaired, "needs paired data"))
    for name, overrides, message in cases:
        cfg = compose_cfg(f"method={name}", *overrides)
        data = build_data(cfg)
        source = getattr(data, "source_shape", None)
        with pytest.raises(GanrunError, match=message):
            build_method(cfg, data.shape, CPU, data.num_classes, 1, source, data)


def test_resume_is_bit_exact(tmp_path):
    """2 steps + 2 resumed = 4 steps bit for bit (dropout draws from the restored RNG)."""
    from test_methods import EDGES, TINY_TRANSLATOR
    from test_train import TENSOR_KEYS, assert_bit_equal, run_and_resume

    a, b, rows_a, rows_b = run_and_resume(tmp_path, "method=pix2pix", *EDGES, *TINY_TRANSLATOR)
    for key in TENSOR_KEYS:
        assert_bit_equal(a[key], b[key], key)
    assert [r["loss/g"] for r in rows_a[2:]] == [r["loss/g"] for r in rows_b]


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("pix2pix_superres_cifar10", "SuperResolution"),
        ("pix2pix_colorization_cifar10", "Colorization"),
    ],
)
def test_cifar10_presets_keep_the_papers_objective_at_our_width(name, task):
    """The 32 px presets: pix2pix with the ns loss, lambda_L1 100, Adam 2e-4 (0.5, 0.999), batch
    norm and dropout 0.5; width 32, batch 16, constant lr, eval every 500 steps on 1,000 test
    images, no FID; the U-Net is the paper's unless method.generator.residual=true."""
    from conftest import compose_cfg

    cfg = compose_cfg(f"experiment={name}", "dataset.source.root=data", smoke=False)
    assert cfg.method._target_.endswith("Pix2PixMethod") and cfg.method.lambda_l1 == 100.0
    assert cfg.loss._target_.endswith("NonSaturatingLoss")
    assert cfg.optimizer.g.lr == cfg.optimizer.d.lr == 2e-4
    assert list(cfg.optimizer.g.betas) == [0.5, 0.999]
    G, D = cfg.method.generator, cfg.method.discriminator
    assert (G.width, D.width, G.norm, G.dropout, G.residual) == (32, 32, "batch", 0.5, False)
    assert cfg.dataset._target_.endswith(task) and cfg.dataset.test_size == 1000
    assert (cfg.trainer.batch_size, cfg.trainer.eval_every) == (16, 500)
    assert len(cfg.schedule) == 0  # constant lr: schedule=constant is an empty node
    assert set(cfg.metrics) == {"features"}  # translation metrics only during training
    residual = compose_cfg(f"experiment={name}", "method.generator.residual=true", smoke=False)
    assert residual.method.generator.residual is True

"""R3GAN (model=r3gan, loss=r3gan): shapes, fix-up init, FIR resampling, the RpGAN + R1 + R2
value by hand, zero-init blocks that start moving at step 2, and the presets' ramps."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_cfg
from omegaconf import OmegaConf
from test_config import build_all, snapshot

from ganrun.build import build_loss
from ganrun.config import CONF
from ganrun.errors import GanrunError
from ganrun.models.r3gan import ACT_GAIN, R3GANDiscriminator, R3GANGenerator, ResidualBlock
from ganrun.models.resample import downsample2d, upsample2d
from ganrun.training.amp import autocast_factory
from ganrun.training.methods.gan import MicroBatch, d_step, g_step
from ganrun.training.schedules import Progress


def tiny(shape, classes=None):
    kw = dict(width=8, blocks_per_stage=1, group_width=4, num_classes=classes)
    return R3GANGenerator(shape, z_dim=6, **kw), R3GANDiscriminator(shape, **kw)


@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_at_several_resolutions(resolution, channels):
    G, D = tiny((channels, resolution, resolution))
    x = G(torch.randn(2, 6))
    assert tuple(x.shape) == (2, channels, resolution, resolution)
    assert tuple(D(x).shape) == (2,)
    assert len(G.stages) == len(D.stages) == int(math.log2(resolution // 4)) + 1


def test_conditional_model_uses_the_labels():
    G, D = tiny((3, 16, 16), classes=5)
    z = torch.randn(2, 6)
    a, b = G(z, y=torch.tensor([0, 0])), G(z, y=torch.tensor([3, 3]))
    assert not torch.allclose(a, b)
    # D(x, y) = linear(phi) + <embed(y), phi>, by hand
    h = D.features(a)
    y = torch.tensor([1, 4])
    expected = D.linear(h).squeeze(1) + (D.embed(y) * h).sum(1)
    torch.testing.assert_close(D(a, y=y), expected)
    with pytest.raises(GanrunError, match="y="):
        G(z)


def test_fixup_init_zero_last_conv_and_scaled_others():
    """conv3 = 0 (the block is the identity); conv1/conv2 ~ N(0, (gain L^-1/4)^2 / fan_in)."""
    L = 16
    block = ResidualBlock(channels=64, expansion=2, group_width=16, n_blocks=L)
    assert torch.count_nonzero(block.conv3.weight) == 0
    x = torch.randn(3, 64, 5, 5)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    for conv, fan_in in ((block.conv1, 64), (block.conv2, 16 * 9)):
        expected = ACT_GAIN * L**-0.25 / math.sqrt(fan_in)
        torch.testing.assert_close(conv.weight.std().item(), expected, rtol=0.05, atol=0.0)
        assert torch.count_nonzero(conv.bias) == 0
    assert block.conv2.groups == 128 // 16


def test_network_with_fixup_uses_its_block_count():
    """Each network scales by its own L = blocks_per_stage x stages (3 x 2 = 6 at 16 px)."""
    torch.manual_seed(0)
    G = R3GANGenerator((1, 16, 16), z_dim=4, width=64, blocks_per_stage=2, group_width=16)
    conv1 = G.stages[0][0].conv1
    expected = ACT_GAIN * 6**-0.25 / math.sqrt(64)
    torch.testing.assert_close(conv1.weight.std().item(), expected, rtol=0.05, atol=0.0)


def test_group_width_must_divide_the_hidden_channels():
    with pytest.raises(GanrunError, match="group_width=12"):
        ResidualBlock(channels=8, expansion=2, group_width=12, n_blocks=1)


def test_fir_resampling_by_hand():
    """taps (1, 3, 3, 1) upsampling is bilinear (inside the border); (1, 2, 1) downsampling
    of a ramp averages each pixel with half its neighbours."""
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)  # columns 0 1 2 3
    up = upsample2d(x)
    # bilinear: output column 2i sits at input i - 1/4, 2i+1 at i + 1/4
    torch.testing.assert_close(up[0, 0, 3, 1:7], torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25, 2.75]))
    down = downsample2d(x, taps=(1, 2, 1))
    # column i: (x[2i-1] + 2 x[2i] + x[2i+1]) / 4 (zero outside), rows likewise
    torch.testing.assert_close(down[0, 0, 1], torch.tensor([0.25, 2.0]))
    torch.testing.assert_close(
        downsample2d(torch.ones(1, 2, 8, 8))[..., 1:3, 1:3], torch.ones(1, 2, 2, 2)
    )


def test_rpgan_r1_r2_value_by_hand():
    """loss=r3gan on D(x) = sum(x^2): softplus(D(f) - D(r)) pairs + gamma/2 E||2r||^2 +
    gamma/2 E||2f||^2 (R1 on reals, R2 on fakes, one gamma)."""
    cfg = compose_cfg("loss=r3gan", "loss.penalties.r1.weight=0.3")
    loss = build_loss(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)))
    real = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    fake = torch.tensor([[0.5, 0.0], [3.0, 1.0]])

    def D(x):
        return x.pow(2).sum(1)

    total, logs = loss.d_loss(D, real, fake)
    d_r, d_f = torch.tensor([5.0, 1.0]), torch.tensor([0.25, 10.0])
    adversarial = torch.log1p(torch.exp(d_f - d_r)).mean()
    r1 = 0.5 * torch.tensor([4 * 5.0, 4 * 1.0]).mean()  # 1/2 E||2x||^2 on reals = 12
    r2 = 0.5 * torch.tensor([4 * 0.25, 4 * 10.0]).mean()  # on fakes = 10.25
    torch.testing.assert_close(logs["r1"], r1)
    torch.testing.assert_close(logs["r2"], r2)
    torch.testing.assert_close(total, adversarial + 0.3 * r1 + 0.3 * r2)
    # G: softplus(D(r) - D(f)), reals as constants
    g_total, _ = loss.g_loss(D, fake, real)
    torch.testing.assert_close(g_total, torch.log1p(torch.exp(d_r - d_f)).mean())


def test_zero_init_layers_move_from_the_second_step(make_cfg):
    """At step 1 the convs in front of a zero last conv get no gradient (test_config's
    exemption); once conv3 has moved, every parameter of G and D moves."""
    cfg, device, data, state, loss = build_all(make_cfg("model=r3gan", "loss=r3gan"))
    G, D = state.players["G"], state.players["D"]
    before = {"G": snapshot(G.net), "D": snapshot(D.net)}
    autocast = autocast_factory(device, cfg.trainer.precision)
    for step in range(2):
        real, _ = next(data.batches(cfg.trainer.batch_size, cfg.seed, step, device))
        z = torch.randn(cfg.trainer.batch_size, cfg.model.z_dim)
        d_step(G, D, loss, [MicroBatch(real, None, z)], autocast)
        g_step(G, D, loss, [MicroBatch(real, None, z)], autocast)
        if step == 0:
            first = {
                k: (p - before["D"][k]).abs().max().item() for k, p in D.net.named_parameters()
            }
            assert first["stages.0.0.conv1.weight"] == 0.0
            assert first["stages.0.0.conv3.weight"] > 0.0
    for name, player in (("G", G), ("D", D)):
        for k, p in player.net.named_parameters():
            assert (p.detach() - before[name][k]).abs().max().item() > 0.0, (name, k)


PRESETS = {
    "r3gan_cifar10": (2e-4, 5e-5, 0.05, 0.005, 5000.0),
    "r3gan_stacked_mnist": (2e-4, 5e-5, 1.0, 0.1, 500.0),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_ramps_follow_r3gan(name):
    """Every ramp of the preset goes from R3GAN's start value to its final value over 20 M
    images along half a cosine (midway: the mean of the two), then holds."""
    lr0, lr1, g0, g1, ema1 = PRESETS[name]
    cfg = OmegaConf.load(CONF / "experiment" / f"{name}.yaml")
    assert cfg.optimizer.g.betas == [0.0, 0.9] and cfg.loss.penalties.r1.weight == g0
    expect = {
        "lr_g": (lr0, lr1),
        "lr_d": (lr0, lr1),
        "beta2_g": (0.9, 0.99),
        "beta2_d": (0.9, 0.99),
    }
    expect |= {"gamma_r1": (g0, g1), "gamma_r2": (g0, g1), "ema": (0.0, ema1)}
    assert sorted(cfg.schedule) == sorted(expect)
    from hydra.utils import instantiate

    for key, (start, end) in expect.items():
        shape = instantiate(cfg.schedule[key].shape)
        for images, value in (
            (0, start),
            (10_000_000, (start + end) / 2),
            (20_000_000, end),
            (40_000_000, end),
        ):
            at = Progress(step=0, images=images, max_steps=1, max_images=1)
            torch.testing.assert_close(shape(at, start), value, rtol=1e-9, atol=1e-12)


def test_ema_half_life_schedule_sets_the_kimg_the_ema_uses():
    """EmaHalfLife writes trainer.ema_kimg's value: 0 falls back to the warmed-up decay,
    then beta = 0.5 ** (images per step / half-life in images)."""
    from ganrun.training.ema import EmaRate
    from ganrun.training.schedules import EmaHalfLife, ScheduledRun

    ema = EmaRate(decay=0.999, kimg=5.0)
    run = ScheduledRun(state=None, method=None, ema=ema)
    param = EmaHalfLife(shape=None)
    assert param.read(run) == 5.0 and param.key() == "ema/kimg"
    param.write(run, 0.0)
    torch.testing.assert_close(ema.beta(step=0, images_seen=0, images_per_step=64), 0.1)
    param.write(run, 2.0)
    torch.testing.assert_close(
        ema.beta(step=5, images_seen=320, images_per_step=64), 0.5 ** (64 / 2000)
    )

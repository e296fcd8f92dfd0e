"""Stabilizers: spectral norm, dropout in D, weight decay, DiffAugment; each from the CLI keys."""

from __future__ import annotations

import pytest
import torch
from test_config import options, train_one_step

from ganrun.augment.diffaugment import DiffAugment, color, cutout, translation
from ganrun.augment.discriminator import AugmentedDiscriminator
from ganrun.build import build_state
from ganrun.errors import GanrunError
from ganrun.sampling.generate import generate
from ganrun.training.players import unwrap
from ganrun.training.train import train


def top_singular_value(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item()


def test_spectral_norm_on_d_caps_every_layers_spectral_norm(make_cfg):
    """model.sn_d=true: after a few power iterations each D layer's top singular value is ~1."""
    cfg = make_cfg("model.sn_d=true")
    state = build_state(cfg, (1, 16, 16), torch.device("cpu"))
    x = torch.randn(8, 1, 16, 16)
    for _ in range(30):  # each train-mode forward runs one power iteration
        state.players["D"].net(x)
    layers = [m for m in state.players["D"].net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(layers) == 3
    for layer in layers:
        assert 0.9 < top_singular_value(layer.weight) < 1.1
    assert not any(hasattr(m, "parametrizations") for m in state.players["G"].net.modules())


def test_spectral_norm_on_g_only_when_asked(make_cfg):
    """model.sn_g=true puts spectral norm on every G conv; D stays plain."""
    state = build_state(make_cfg("model.sn_g=true"), (1, 16, 16), torch.device("cpu"))
    g_layers = [
        m for m in state.players["G"].net.modules() if isinstance(m, torch.nn.ConvTranspose2d)
    ]
    assert len(g_layers) == 3
    assert all(hasattr(m, "parametrizations") for m in g_layers)
    assert not any(hasattr(m, "parametrizations") for m in state.players["D"].net.modules())


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_dropout_in_d_is_random_in_train_mode_and_off_in_eval(model, make_cfg):
    """discriminator.dropout=0.5 adds Dropout layers; train-mode outputs vary, eval-mode ones do not."""
    cfg = make_cfg(f"model={model}", "model.discriminator.dropout=0.5")
    state = build_state(cfg, (1, 16, 16), torch.device("cpu"))
    drops = [m for m in state.players["D"].net.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == (3 if model == "mlp" else 2)
    assert all(m.p == 0.5 for m in drops)
    x = torch.randn(4, 1, 16, 16)
    assert not torch.equal(state.players["D"].net(x), state.players["D"].net(x))
    state.players["D"].net.eval()
    torch.testing.assert_close(state.players["D"].net(x), state.players["D"].net(x), rtol=0, atol=0)


def test_weight_decay_reaches_both_optimizers(make_cfg):
    """optimizer.{g,d}.weight_decay set on the command line land in the optimizers' param groups."""
    cfg = make_cfg("optimizer.g.weight_decay=1e-4", "optimizer.d.weight_decay=5e-4")
    state = build_state(cfg, (1, 16, 16), torch.device("cpu"))
    assert state.players["G"].opt.param_groups[0]["weight_decay"] == pytest.approx(1e-4, rel=1e-9)
    assert state.players["D"].opt.param_groups[0]["weight_decay"] == pytest.approx(5e-4, rel=1e-9)


def test_translation_moves_a_pixel_within_the_ratio():
    """A single bright pixel moves by at most 1/8 of the size (or falls off the image)."""
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    out = translation(x)
    assert out.shape == x.shape
    for img in out[:, 0]:
        assert img.sum().item() == 1.0  # a 2-px shift from the centre stays inside
        y, xx = (img == 1).nonzero()[0].tolist()
        assert abs(y - 8) <= 2 and abs(xx - 8) <= 2
    assert len({tuple((img == 1).nonzero()[0].tolist()) for img in out[:, 0]}) > 5


def test_cutout_zeroes_at_most_half_the_side_squared():
    """cutout(ratio=0.5) on 16x16 ones zeroes between 1 and 8*8 pixels per image; mean near 64."""
    torch.manual_seed(0)
    out = cutout(torch.ones(256, 1, 16, 16))
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.min().item() >= 1
    assert zeros.max().item() <= 64
    assert 40 < zeros.float().mean().item() <= 64


def test_color_changes_brightness_by_at_most_half():
    """Brightness shifts each image by U(-0.5, 0.5): on a constant image only that shift remains."""
    torch.manual_seed(0)
    x = torch.full((128, 3, 4, 4), 0.2)
    shift = color(x).mean(dim=(1, 2, 3)) - 0.2
    assert -0.5 <= shift.min().item() < -0.3
    assert 0.3 < shift.max().item() <= 0.5


def test_diffaugment_is_differentiable_and_rejects_bad_input():
    """Gradients reach the input through every op; unknown ops and 2-D points give GanrunError."""
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    DiffAugment()(x).square().sum().backward()
    assert x.grad is not None and 0 < x.grad.abs().sum().item() < 1e6
    with pytest.raises(GanrunError, match="flip"):
        DiffAugment(["flip"])
    with pytest.raises(GanrunError, match="ring8"):
        DiffAugment()(torch.randn(4, 2))


@pytest.mark.parametrize("name", options("augment"))
def test_augment_yaml_builds_and_steps(name, make_cfg):
    """augment=<name> wraps D; one D and one G step move each player."""
    _, d_change, g_change, logs, built = train_one_step(make_cfg(f"augment={name}"))
    assert isinstance(built["state"].players["D"].net, AugmentedDiscriminator)
    assert 0 < max(d_change.values()) < 1
    assert 0 < max(g_change.values()) < 1


def test_stabilized_run_checkpoints_plain_models_and_resumes_exactly(make_cfg, tmp_path):
    """SN on G and D + DiffAugment: the checkpoint holds plain D keys, sampling rebuilds G with
    spectral norm, and resuming from step 2 reproduces step 4 bit for bit."""
    keys = ("augment=diffaugment", "model.sn_g=true", "model.sn_d=true")
    train(make_cfg(*keys), tmp_path / "a", keys)
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)
    assert not any(k.startswith(("module.", "augment.")) for k in a["players"]["D"]["net"])
    assert any("parametrizations" in k for k in a["players"]["D"]["net"])

    step2 = str(tmp_path / "a" / "checkpoints" / "step_0000002.pt")
    train(make_cfg(f"resume={step2}"), tmp_path / "b", [f"resume={step2}"])
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    for name, part in (("G", "net"), ("D", "net"), ("G", "ema")):
        sa, sb = a["players"][name][part], b["players"][name][part]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), (name, part, k)

    from omegaconf import OmegaConf

    from ganrun.build import build_generator

    G = build_generator(OmegaConf.create(a["config"]).model, tuple(a["data"]["shape"]))
    G.load_state_dict(a["players"]["G"]["ema"])
    G.eval()
    out = generate(G, torch.randn(5, 100), 5)
    assert out.shape == (5, 1, 16, 16)
    assert -1.0 <= out.min().item() and out.max().item() <= 1.0
    assert unwrap(G) is G

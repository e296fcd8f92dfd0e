"""Class-conditional GANs: label-embedding and conditional-BN generators, projection D, the
labels flowing through training, resume and `ganrun sample labels=[...]`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from test_config import options, train_one_step

from ganrun.build import build_state
from ganrun.errors import GanrunError
from ganrun.models.conditional import (
    ACGANDiscriminator,
    ConditionalBatchNorm,
    ConditionalBNGenerator,
    EmbeddingGenerator,
    ProjectionDiscriminator,
)
from ganrun.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganrun.models.mlp import MLPGenerator
from ganrun.sampling.command import sample
from ganrun.training.train import train

SHAPE = (1, 16, 16)


# the model each conditioning option is stepped with (default: the dcgan preset)
CONDITIONING_MODEL = {"native": "model=stylegan2"}
# the D class each option gives
CONDITIONING_D = {"native": "ganrun.models.stylegan2.StyleGAN2Discriminator"}


@pytest.mark.parametrize("name", options("conditioning"))
def test_conditioning_yaml_builds_and_steps(name, make_cfg):
    """conditioning=<name> on the labelled digits: both players move in one D and one G step."""
    model = CONDITIONING_MODEL.get(name, "model=dcgan")
    _, d_change, g_change, logs, built = train_one_step(make_cfg(f"conditioning={name}", model))
    expected = CONDITIONING_D.get(name)
    D = built["state"].players["D"].net
    if expected is None:
        assert isinstance(D, (ProjectionDiscriminator, ACGANDiscriminator))
    else:
        assert f"{type(D).__module__}.{type(D).__name__}" == expected
    assert 0 < max(d_change.values()) < 1
    assert 0 < max(g_change.values()) < 1


def test_embedding_generator_widens_the_latent_and_uses_the_label():
    """The base G sees z_dim + embed_dim inputs; the same z under two labels gives two images."""
    G = EmbeddingGenerator(
        lambda z_dim: DCGANGenerator(SHAPE, z_dim=z_dim, width=8), 10, z_dim=6, embed_dim=4
    )
    assert G.base.z_dim == 10
    G.eval()
    z = torch.randn(1, 6).repeat(2, 1)
    out = G(z, torch.tensor([2, 5]))
    assert out.shape == (2, *SHAPE)
    assert (out[0] - out[1]).abs().max().item() > 1e-4


def test_conditional_bn_replaces_every_batchnorm_with_per_class_affine():
    """All 2 BatchNorms of a 16px DCGAN G become conditional; class gammas scale the output."""
    G = ConditionalBNGenerator(lambda: DCGANGenerator(SHAPE, z_dim=6, width=8), 10, z_dim=6)
    cbn = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm)]
    assert len(cbn) == 2
    plain_bn = [m for m in G.modules() if type(m) is torch.nn.BatchNorm2d]
    assert all(not m.affine for m in plain_bn) and len(plain_bn) == 2
    x = torch.randn(4, cbn[0].bn.num_features, 4, 4)
    cbn[0].labels = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():
        cbn[0].gamma.weight[1] = 2.0
        cbn[0].beta.weight[1] = 0.5
    cbn[0].eval()
    normed = cbn[0].bn(x)
    out = cbn[0](x)
    torch.testing.assert_close(out[:2], normed[:2])
    torch.testing.assert_close(out[2:], 2.0 * normed[2:] + 0.5)


def test_conditional_bn_needs_batchnorm():
    """An MLP G has no BatchNorm to condition: a clear error pointing at conditioning=projection."""
    with pytest.raises(GanrunError, match="conditioning=projection"):
        ConditionalBNGenerator(lambda: MLPGenerator(SHAPE, z_dim=6, width=8), 10, z_dim=6)


def test_projection_adds_the_label_embedding_inner_product():
    """D(x, y) = classify(phi(x)) + <embed(y), phi(x)>, checked against the pieces by hand."""
    base = DCGANDiscriminator(SHAPE, width=8).eval()
    D = ProjectionDiscriminator(lambda: base, 10, SHAPE).eval()
    x, y = torch.randn(3, *SHAPE), torch.tensor([0, 4, 9])
    phi = base.features(x).flatten(1)
    assert D.embed.weight.shape == (10, phi.shape[1])
    expected = base.classify(base.features(x)) + (D.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(D(x, y), expected)
    assert (D(x, torch.tensor([1, 1, 1])) - D(x, y)).abs().max().item() > 0


def test_unlabelled_data_is_refused(make_cfg):
    """conditioning on ring8 (no labels) is a clear error naming the labelled datasets."""
    with pytest.raises(GanrunError, match="no class labels"):
        build_state(make_cfg("conditioning=projection", "model=mlp"), (2,), torch.device("cpu"))


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond")
    keys = ("conditioning=cbn_projection",)
    train(compose_cfg(*keys), root / "a", keys)
    return root


def test_conditional_run_resumes_bit_for_bit(conditional_run, tmp_path):
    """Resuming a conditional run from step 2 reproduces step 4's models exactly."""
    step2 = str(conditional_run / "a" / "checkpoints" / "step_0000002.pt")
    train(compose_cfg(f"resume={step2}"), tmp_path / "b", [f"resume={step2}"])
    a = torch.load(conditional_run / "a" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert any(
        "gamma" in k for k in a["players"]["G"]["net"]
    )  # conditional BN weights are in the checkpoint
    for name, part in (("G", "net"), ("D", "net"), ("G", "ema")):
        sa, sb = a["players"][name][part], b["players"][name][part]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), (name, part, k)


def test_sample_draws_the_requested_classes(conditional_run, tmp_path):
    """labels=[3,7] cycles 3,7,...; samples.npz carries them; other classes give other images."""
    ckpt = str(conditional_run / "a" / "checkpoints" / "last.pt")
    base = ("n=6", "seed=0", f"ckpt={ckpt}")
    sample(compose_cfg(*base, "labels=[3,7]", f"out={tmp_path / 's'}", task="sample", smoke=False))
    sample(compose_cfg(*base, "labels=[1]", f"out={tmp_path / 't'}", task="sample", smoke=False))
    s, t = np.load(tmp_path / "s" / "samples.npz"), np.load(tmp_path / "t" / "samples.npz")
    assert s["labels"].tolist() == [3, 7, 3, 7, 3, 7]
    assert t["labels"].tolist() == [1] * 6
    assert s["images"].shape == (6, 16, 16, 1)
    assert not np.array_equal(s["images"], t["images"])
    with pytest.raises(GanrunError, match="out of range"):
        sample(compose_cfg(*base, "labels=[10]", task="sample", smoke=False))


def test_acgan_aux_loss_is_weighted_class_cross_entropy_in_both_players():
    """aux_loss = weight * CE(class head, y) by hand; d_loss adds it on reals and fakes, g_loss
    on fakes; the adversarial head ignores the labels."""
    from ganrun.losses.ns import NonSaturatingLoss
    from ganrun.training.methods.gan import auxiliary

    torch.manual_seed(0)
    base = DCGANDiscriminator(SHAPE, width=8).eval()
    D = ACGANDiscriminator(lambda: base, 10, SHAPE, weight=0.5).eval()
    x, y = torch.randn(4, *SHAPE), torch.tensor([1, 2, 3, 4])
    logits = D.class_logits(x)
    by_hand = -sum(torch.log_softmax(logits[i], 0)[y[i]] for i in range(4)) / 4
    torch.testing.assert_close(D.aux_loss(x, y), 0.5 * by_hand)
    torch.testing.assert_close(D(x, y), D(x, torch.zeros(4, dtype=torch.long)))

    aux = auxiliary(D, y)
    fake = torch.randn(4, *SHAPE)
    loss = NonSaturatingLoss()
    d_with, d_logs = loss.d_loss(D, x, fake, aux=aux)
    d_without, _ = loss.d_loss(D, x, fake)
    torch.testing.assert_close(d_with - d_without, D.aux_loss(x, y) + D.aux_loss(fake, y))
    torch.testing.assert_close(d_logs["aux/d"], D.aux_loss(x, y) + D.aux_loss(fake, y))
    g_with, g_logs = loss.g_loss(D, fake, aux=aux)
    g_without, _ = loss.g_loss(D, fake)
    torch.testing.assert_close(g_with - g_without, D.aux_loss(fake, y))
    assert auxiliary(ProjectionDiscriminator(lambda: base, 10, SHAPE), y) is None
    assert auxiliary(D, None) is None


def test_acgan_with_augment_is_refused(make_cfg):
    """The class head would see un-augmented inputs: a clear error naming both options."""
    with pytest.raises(GanrunError, match="acgan"):
        build_state(
            make_cfg("conditioning=acgan", "augment=diffaugment"), SHAPE, torch.device("cpu"), 10
        )

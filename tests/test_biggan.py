"""BigGAN (model=biggan) and SAGAN self-attention: shapes, hierarchical z, the shared-embedding
conditional BatchNorm, truncation, attention by hand, orthogonal regularisation on G's
weights, and the zero-init attention that starts moving at step 2."""

from __future__ import annotations

import pytest
import torch
from test_config import build_all, snapshot
from torch import nn

from ganrun.errors import GanrunError
from ganrun.losses.regularisers import OrthogonalRegulariser
from ganrun.models.biggan import (
    BigGANDiscriminator,
    BigGANGenerator,
    SharedConditionBatchNorm,
    truncated_normal,
)
from ganrun.models.layers import SelfAttention
from ganrun.models.resnet import ResNetDiscriminator, ResNetGenerator
from ganrun.training.amp import autocast_factory
from ganrun.training.methods.gan import MicroBatch, d_step, g_step


def tiny(resolution=16, classes=None, attention=8, channels=3, z_dim=12):
    shape = (channels, resolution, resolution)
    G = BigGANGenerator(
        shape,
        z_dim=z_dim,
        width=8,
        shared_dim=4,
        attention_resolution=attention,
        num_classes=classes,
    )
    D = BigGANDiscriminator(shape, width=8, attention_resolution=8, num_classes=classes)
    return G, D


@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("classes", [None, 5])
def test_shapes_at_several_resolutions(resolution, classes):
    G, D = tiny(resolution, classes, z_dim=60)  # 60 splits into 3, 4 and 5 chunks
    y = None if classes is None else torch.tensor([0, 4])
    x = G(torch.randn(2, 60), y=y)
    assert tuple(x.shape) == (2, 3, resolution, resolution)
    assert x.abs().max() <= 1.0
    assert tuple(D(x, y=y).shape) == (2,)
    assert sum(isinstance(b, SelfAttention) for b in G.blocks) == 1


def captured_conditions(G, z, y):
    """The condition each conditional BatchNorm of G receives, block by block."""
    seen = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out: seen.append(args[1]))
        for m in G.modules()
        if isinstance(m, SharedConditionBatchNorm)
    ]
    G.eval()(z, y=y)
    for h in hooks:
        h.remove()
    return seen


def test_each_block_gets_its_own_z_chunk_and_the_shared_embedding():
    """z = [z0 | z1 | z2] at 16 px (2 blocks): the linear layer reads z0, both norms of block
    i read [z_{i+1}, shared(y)]; changing one chunk changes the image."""
    torch.manual_seed(0)
    G, _ = tiny(16, classes=5, z_dim=12)
    z, y = torch.randn(2, 12), torch.tensor([1, 3])
    conds = captured_conditions(G, z, y)
    assert len(conds) == 4  # 2 blocks x 2 norms
    shared = G.shared(y)
    for i, cond in enumerate(conds):
        chunk = z[:, 4 * (i // 2 + 1) : 4 * (i // 2 + 2)]
        torch.testing.assert_close(cond, torch.cat([chunk, shared], dim=1))
    base = G(z, y=y)
    for i in range(3):
        z2 = z.clone()
        z2[:, 4 * i : 4 * (i + 1)] += 1.0
        assert not torch.allclose(G(z2, y=y), base), f"chunk {i} has no effect"
    assert not torch.allclose(G(z, y=torch.tensor([0, 0])), base)  # the class matters
    # one embedding table in the whole G: the norms share it
    assert sum(isinstance(m, nn.Embedding) for m in G.modules()) == 1


def test_conditional_batchnorm_by_hand():
    bn = SharedConditionBatchNorm(3, cond_dim=2)
    x, c = torch.randn(4, 3, 2, 2), torch.randn(4, 2)
    normed = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(
        x.var((0, 2, 3), unbiased=False, keepdim=True) + bn.bn.eps
    )
    expected = (
        normed * (1 + c @ bn.gain.weight.t())[:, :, None, None]
        + (c @ bn.bias.weight.t())[:, :, None, None]
    )
    torch.testing.assert_close(bn(x, c), expected)


def test_unconditional_biggan_has_plain_batchnorm_and_one_z():
    G, D = tiny(16, classes=None, z_dim=7)  # any z_dim: not split
    assert G.shared is None and D.embed is None
    assert not any(isinstance(m, SharedConditionBatchNorm) for m in G.modules())
    assert G.linear.in_features == 7


def test_z_dim_must_split_into_equal_chunks():
    with pytest.raises(GanrunError, match=r"model.z_dim=10.*multiple of 3"):
        tiny(16, classes=5, z_dim=10)


def test_truncation_bounds_z_and_is_deterministic():
    z = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0)) * 2
    for t in (0.5, 1.0, 2.0):
        zt = truncated_normal(z, t)
        assert zt.abs().max() <= t
        torch.testing.assert_close(zt, truncated_normal(z, t), rtol=0, atol=0)
        # order-preserving: a monotone map of each draw
        ordered = zt[z[:, 0].argsort(), 0]
        assert bool((ordered.diff() >= 0).all())
    # a wide truncation is (almost) no truncation; the inverse CDF by hand at z = 0 and t = 1
    torch.testing.assert_close(truncated_normal(z[:10], 20.0), z[:10], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(truncated_normal(torch.zeros(3), 1.0), torch.zeros(3))
    u = torch.distributions.Normal(0.0, 1.0)
    lo = u.cdf(torch.tensor(-1.0))
    by_hand = u.icdf(lo + u.cdf(torch.tensor(0.5)) * (1 - 2 * lo))
    torch.testing.assert_close(truncated_normal(torch.tensor([0.5]), 1.0), by_hand.view(1))


def test_generator_truncation_keywords():
    torch.manual_seed(0)
    G, _ = tiny(16, classes=5)
    G.eval()
    z, y = torch.randn(3, 12) * 3, torch.tensor([0, 1, 2])
    assert G.supports_truncation is True
    torch.testing.assert_close(G(z, y=y, truncation=None), G(z, y=y))
    torch.testing.assert_close(G(z, y=y, truncation=0.5), G(truncated_normal(z, 0.5), y=y))
    assert not torch.allclose(G(z, y=y, truncation=0.5), G(z, y=y))
    with pytest.raises(GanrunError, match="truncation_cutoff=4.*drop truncation_cutoff"):
        G(z, y=y, truncation=0.5, truncation_cutoff=4)
    with pytest.raises(GanrunError, match="truncation=0.*> 0"):
        G(z, y=y, truncation=0.0)


def test_self_attention_starts_as_identity_and_matches_a_hand_computation():
    torch.manual_seed(0)
    attn = SelfAttention(16)
    x = torch.randn(2, 16, 4, 4)
    assert attn.gamma.item() == 0.0
    out = attn(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    with torch.no_grad():
        attn.gamma.fill_(0.7)
    # by hand: queries at 16 positions, keys/values max-pooled to 4 positions
    q = torch.einsum("kc,bchw->bkhw", attn.theta.weight[:, :, 0, 0], x).flatten(2)
    pooled = nn.functional.max_pool2d
    k = pooled(torch.einsum("kc,bchw->bkhw", attn.phi.weight[:, :, 0, 0], x), 2).flatten(2)
    v = pooled(torch.einsum("kc,bchw->bkhw", attn.g.weight[:, :, 0, 0], x), 2).flatten(2)
    weights = torch.softmax(torch.einsum("bkn,bkm->bnm", q, k), dim=-1)  # (B, 16, 4)
    mixed = torch.einsum("bvm,bnm->bvn", v, weights).view(2, 8, 4, 4)
    o = torch.einsum("cv,bvhw->bchw", attn.o.weight[:, :, 0, 0], mixed)
    torch.testing.assert_close(attn(x), x + 0.7 * o)


def test_resnet_attention_option_is_off_by_default_and_adds_one_block():
    torch.manual_seed(0)
    plain_keys = [k for k, _ in ResNetGenerator((1, 16, 16), z_dim=4, width=8).named_parameters()]
    G = ResNetGenerator((1, 16, 16), z_dim=4, width=8, attention_resolution=8)
    D = ResNetDiscriminator((1, 16, 16), width=8, attention_resolution=8)
    assert [type(b) for b in G.blocks].count(SelfAttention) == 1
    assert isinstance(G.blocks[1], SelfAttention)  # after the 4 -> 8 block
    assert isinstance(D.blocks[1], SelfAttention)  # after the first 16 -> 8 block
    assert tuple(D(G(torch.randn(3, 4))).shape) == (3,)
    assert not any("gamma" in k for k in plain_keys)
    with pytest.raises(GanrunError, match=r"model.discriminator.attention_resolution=16"):
        ResNetDiscriminator((1, 16, 16), width=8, attention_resolution=16)


def test_orthogonal_regulariser_on_biggan_weights_by_hand():
    """The sum over G's conv and linear weights (attention and conditional-norm maps too) of
    ||W W^T (1 - I)||_F^2; the shared embedding and BatchNorm are left out."""
    torch.manual_seed(0)
    G, _ = tiny(16, classes=5)
    by_hand = torch.zeros(())
    names = []
    for name, p in G.named_parameters():
        if p.dim() < 2 or name.startswith("shared."):
            continue
        w = p.flatten(1)
        gram = w @ w.t()
        by_hand = by_hand + (gram - torch.diag(torch.diag(gram))).pow(2).sum()
        names.append(name)
    assert "blocks.0.bn1.gain.weight" in names and "blocks.1.theta.weight" in names
    value = OrthogonalRegulariser()(G, G, torch.zeros(1, 12))
    torch.testing.assert_close(value, by_hand)
    with torch.no_grad():
        G.shared.weight.mul_(3.0)  # the embedding does not count
    torch.testing.assert_close(OrthogonalRegulariser()(G, G, torch.zeros(1, 12)), by_hand)


def test_conditional_biggan_trains_and_attention_moves_from_step_two(make_cfg):
    """conditioning=native on the digits: at step 1 only gamma of the attention moves (its
    convs sit behind gamma = 0); after step 2 every parameter of G and D has moved."""
    cfg, device, data, state, loss = build_all(
        make_cfg("model=biggan", "conditioning=native", "model.z_dim=12")
    )
    G, D = state.players["G"], state.players["D"]
    assert G.net.num_classes == 10 and D.net.num_classes == 10
    before = {"G": snapshot(G.net), "D": snapshot(D.net)}
    autocast = autocast_factory(device, cfg.trainer.precision)
    for step in range(2):
        real, labels = next(data.batches(cfg.trainer.batch_size, cfg.seed, step, device))
        z = torch.randn(cfg.trainer.batch_size, cfg.model.z_dim)
        d_step(G, D, loss, [MicroBatch(real, labels, z)], autocast)
        g_step(G, D, loss, [MicroBatch(real, labels, z)], autocast)
        if step == 0:
            moved = {
                k: (p - before["G"][k]).abs().max().item() for k, p in G.net.named_parameters()
            }
            attention = [k for k in moved if ".theta." in k]
            assert attention and all(moved[k] == 0.0 for k in attention)
            assert moved["blocks.2.gamma"] > 0.0
    for name, player in (("G", G), ("D", D)):
        for k, p in player.net.named_parameters():
            assert (p.detach() - before[name][k]).abs().max().item() > 0.0, (name, k)


def test_sampling_with_truncation_is_reproducible_per_seed():
    """ganrun's sampling (Generator.sample, as `ganrun sample truncation=t`) passes truncation
    to BigGAN: the same seed gives the same samples, equal to G on the truncated latents."""
    from ganrun.sampling.generator import Generator

    torch.manual_seed(0)
    G, _ = tiny(16, classes=5)
    gen = Generator(G.eval(), z_dim=12, data_shape=(3, 16, 16), num_classes=5)
    a = gen.sample(4, seed=3, truncation=0.5)
    torch.testing.assert_close(a, gen.sample(4, seed=3, truncation=0.5), rtol=0, atol=0)
    z, y = gen.latents(4, seed=3), gen.labels_for(4, None)
    with torch.no_grad():
        torch.testing.assert_close(a, G(truncated_normal(z, 0.5), y=y))
    assert not torch.allclose(a, gen.sample(4, seed=3))

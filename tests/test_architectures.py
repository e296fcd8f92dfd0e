"""ResNet (SNGAN) and PatchGAN, and swapping either side of a model pair from the command line."""

from __future__ import annotations

import math

import pytest
import torch
from test_config import train_one_step

from ganrun.build import build_state
from ganrun.config import CONF
from ganrun.errors import GanrunError
from ganrun.models.patchgan import PatchDiscriminator
from ganrun.models.resnet import ResNetDiscriminator, ResNetGenerator


def side_options(side: str) -> list[str]:
    return sorted(p.stem for p in (CONF / "model" / side).glob("*.yaml"))


SIDES = [(side, name) for side in ("generator", "discriminator") for name in side_options(side)]


@pytest.mark.parametrize(("side", "name"), SIDES)
def test_every_side_yaml_trains_in_a_dcgan_pair(side, name, make_cfg):
    """model/<side>=<name> with model=dcgan's other side: one D and one G step move each player."""
    _, d_change, g_change, _, _ = train_one_step(make_cfg("model=dcgan", f"model/{side}={name}"))
    assert 0 < max(d_change.values()) < 1
    assert 0 < max(g_change.values()) < 1


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_resnet_shapes_and_block_counts(shape):
    """One G block per doubling from 4x4 (7x7 for 28); D sums to one logit per image."""
    G, D = ResNetGenerator(shape, z_dim=16, width=8), ResNetDiscriminator(shape, width=8)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, *shape)
    assert -1 <= x.min().item() and x.max().item() <= 1
    assert D(x).shape == (3,)
    start = 7 if shape[1] == 28 else 4
    assert len(G.blocks) == int(math.log2(shape[1] // start))
    assert len(D.blocks) == max(len(G.blocks) - 1, 1) + 2


def test_sngan_cifar_network_matches_the_paper(make_cfg):
    """model=resnet at 32x32: 3 G blocks of 256 channels, D of 4 blocks of 128 with spectral norm."""
    cfg = make_cfg("model=resnet", "model.generator.width=256", "model.discriminator.width=128")
    state = build_state(cfg, (3, 32, 32), torch.device("cpu"))
    assert len(state.players["G"].net.blocks) == 3
    assert {b.conv1.out_channels for b in state.players["G"].net.blocks} == {256}
    assert len(state.players["D"].net.blocks) == 4
    convs = [m for m in state.players["D"].net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 * 2 + 2  # two convs per block; 1x1 shortcuts in the two down blocks
    assert all(hasattr(m, "parametrizations") for m in convs)
    g_params = sum(p.numel() for p in state.players["G"].net.parameters())
    assert 4.0e6 < g_params < 4.5e6  # SNGAN's CIFAR G has about 4.3M parameters


def test_patchgan_is_pix2pix_70x70_at_256():
    """depth 3 at 256x256 gives the 30x30 logit map and 5 convs of pix2pix's PatchGAN."""
    D = PatchDiscriminator((3, 256, 256), width=64)
    assert D(torch.randn(1, 3, 256, 256)).shape == (1, 30, 30)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]


def test_patchgan_depth_adapts_to_small_images_and_rejects_impossible_ones():
    """depth=null picks at most 3 layers keeping a >= 2x2 map; depth=4 at 16x16 is a clear error."""
    assert PatchDiscriminator((1, 16, 16), width=8)(torch.randn(2, 1, 16, 16)).shape == (2, 2, 2)
    with pytest.raises(GanrunError, match="depth=4"):
        PatchDiscriminator((1, 16, 16), width=8, depth=4)

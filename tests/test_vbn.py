"""Virtual batch norm: hand-computed statistics, independence from the rest of the minibatch."""

from __future__ import annotations

import math

import pytest
import torch

from ganrun.build import build_generator
from ganrun.errors import GanrunError
from ganrun.models.dcgan import DCGANGenerator
from ganrun.models.mlp import MLPGenerator
from ganrun.models.vbn import VirtualBatchNorm, VirtualBatchNormGenerator


def test_vbn_mixes_reference_and_own_statistics_by_hand():
    """Reference [1, 3] (mean 2, mean square 5), example 5: with weight 1/3 the mixed mean is
    3 and the mixed mean square 35/3, so the output is (5 - 3) / sqrt(8/3)."""
    vbn = VirtualBatchNorm(1, eps=0.0)
    ref = vbn(torch.tensor([[1.0], [3.0]]))
    torch.testing.assert_close(ref, torch.tensor([[-1.0], [1.0]]))
    out = vbn(torch.tensor([[5.0]]))
    torch.testing.assert_close(out, torch.tensor([[2.0 / math.sqrt(8.0 / 3.0)]]))


def test_vbn_generator_output_does_not_depend_on_the_minibatch():
    """G(z)[0] equals G(z[:1]) with VBN (in training mode), unlike plain BatchNorm."""
    torch.manual_seed(0)
    make = lambda: DCGANGenerator((1, 16, 16), z_dim=8, width=8)  # noqa: E731
    vbn_g, bn_g = VirtualBatchNormGenerator(make, z_dim=8, reference_size=16), make()
    z = torch.randn(6, 8)
    torch.testing.assert_close(vbn_g(z)[:1], vbn_g(z[:1]), rtol=1e-5, atol=1e-5)
    assert (bn_g(z)[:2] - bn_g(z[:2])).abs().max().item() > 1e-3
    assert len(vbn_g.vbn) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in vbn_g.modules())
    assert vbn_g.state_dict()["reference_z"].shape == (16, 8)


def test_vbn_needs_batchnorm_and_excludes_conditioning():
    """An MLP G has no BatchNorm to replace; VBN with conditioning is refused with both keys named."""
    with pytest.raises(GanrunError, match="model.virtual_bn"):
        VirtualBatchNormGenerator(lambda: MLPGenerator((2,), z_dim=2, width=8), z_dim=2)
    from conftest import compose_cfg

    cfg = compose_cfg("model.virtual_bn=true", "conditioning=projection")
    with pytest.raises(GanrunError, match="conditioning"):
        build_generator(cfg.model, (1, 16, 16), cfg.conditioning, 10)

"""Generator/discriminator pairs: shapes for every data shape, the DCGAN recipe, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganrun.errors import GanrunError
from ganrun.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganrun.models.mlp import MLPDiscriminator, MLPGenerator

IMAGE_SHAPES = [(1, 16, 16), (1, 28, 28), (3, 32, 32), (3, 64, 64)]
Z_DIM = 16
BATCH = 4


def tiny_pair(kind: str, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    if kind == "dcgan":
        return DCGANGenerator(shape, z_dim=Z_DIM, width=4), DCGANDiscriminator(shape, width=4)
    return MLPGenerator(shape, z_dim=Z_DIM, width=16, depth=2), MLPDiscriminator(
        shape, width=16, depth=2
    )


def layers(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.fixture(scope="module")
def dcgan64() -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """The paper's 64x64 RGB network at the paper's width (64), seeded."""
    torch.manual_seed(0)
    return DCGANGenerator((3, 64, 64), z_dim=100, width=64), DCGANDiscriminator(
        (3, 64, 64), width=64
    )


@pytest.mark.parametrize(
    ("kind", "shape"),
    [("dcgan", s) for s in IMAGE_SHAPES] + [("mlp", s) for s in [*IMAGE_SHAPES, (2,)]],
    ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v,
)
def test_output_shapes(kind, shape):
    """G maps (B, z_dim) to (B, *data_shape); D maps (B, *data_shape) to (B,) logits."""
    torch.manual_seed(0)
    G, D = tiny_pair(kind, shape)
    fake = G(torch.randn(BATCH, Z_DIM))
    assert tuple(fake.shape) == (BATCH, *shape)
    logits = D(fake)
    assert tuple(logits.shape) == (BATCH,)
    assert logits.dtype == torch.float32
    # D's logits depend on the input (no constant output), each sample separately
    other = D(torch.randn(BATCH, *shape))
    assert (logits - other).abs().min().item() > 0.0


def test_dcgan64_has_five_convolutions_per_side(dcgan64):
    """At 64x64 it is the paper's network: 5 transposed convs in G, 5 convs in D."""
    G, D = dcgan64
    assert len(layers(G, nn.ConvTranspose2d)) == 5
    assert len(layers(G, nn.Conv2d)) == 0
    assert len(layers(D, nn.Conv2d)) == 5
    assert len(layers(D, nn.ConvTranspose2d)) == 0
    # channels: z -> 8w 4w 2w w -> 3 in G, 3 -> w 2w 4w 8w -> 1 in D (w = 64)
    assert [m.out_channels for m in layers(G, nn.ConvTranspose2d)] == [512, 256, 128, 64, 3]
    assert [m.out_channels for m in layers(D, nn.Conv2d)] == [64, 128, 256, 512, 1]
    assert layers(G, nn.ConvTranspose2d)[0].in_channels == 100


def test_dcgan64_batchnorm_placement(dcgan64):
    """BatchNorm after each G layer but the output, after each D conv but the first and last."""
    G, D = dcgan64
    assert [m.num_features for m in layers(G, nn.BatchNorm2d)] == [512, 256, 128, 64]
    assert [m.num_features for m in layers(D, nn.BatchNorm2d)] == [128, 256, 512]


def test_dcgan64_activations(dcgan64):
    """ReLU in G with a tanh output; LeakyReLU(0.2) in D and a raw logit out."""
    G, D = dcgan64
    assert isinstance(list(G.modules())[-1], nn.Tanh)
    assert len(layers(G, nn.ReLU)) == 4
    assert len(layers(G, nn.LeakyReLU)) == 0
    slopes = [m.negative_slope for m in layers(D, nn.LeakyReLU)]
    assert slopes == [0.2, 0.2, 0.2, 0.2]
    assert isinstance(list(D.modules())[-1], nn.Conv2d)
    assert len(layers(D, nn.Sigmoid)) == 0  # the losses take logits


def test_dcgan_slope_is_configurable():
    """The `slope` argument reaches every LeakyReLU in D."""
    D = DCGANDiscriminator((1, 32, 32), width=4, slope=0.1)
    assert [m.negative_slope for m in layers(D, nn.LeakyReLU)] == [0.1, 0.1, 0.1]


def test_dcgan_init_std(dcgan64):
    """Conv weights are N(0, 0.02), BatchNorm scales N(1, 0.02), BatchNorm shifts zero."""
    for model in dcgan64:
        convs = layers(model, nn.Conv2d) + layers(model, nn.ConvTranspose2d)
        for conv in convs:
            w = conv.weight.detach()
            assert w.numel() >= 1000
            assert 0.017 < w.std().item() < 0.023, conv
            assert -0.002 < w.mean().item() < 0.002, conv
            assert conv.bias is None
        weights = torch.cat([c.weight.detach().flatten() for c in convs])
        assert weights.numel() > 2_000_000
        assert 0.0198 < weights.std().item() < 0.0202
        assert -1e-4 < weights.mean().item() < 1e-4
        scales = torch.cat([bn.weight.detach() for bn in layers(model, nn.BatchNorm2d)])
        assert 0.018 < scales.std().item() < 0.022
        assert 0.998 < scales.mean().item() < 1.002
        for bn in layers(model, nn.BatchNorm2d):
            torch.testing.assert_close(bn.bias.detach(), torch.zeros_like(bn.bias))


@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
def test_dcgan_rejects_points(cls):
    """Points into DCGAN: the error names the shape and suggests model=mlp."""
    with pytest.raises(GanrunError) as err:
        cls((2,))
    message = str(err.value)
    assert "model=dcgan needs square images" in message
    assert "(2,)" in message
    assert "model=mlp" in message


@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
@pytest.mark.parametrize("shape", [(1, 20, 20), (3, 48, 48), (3, 7, 7)])
def test_dcgan_rejects_unbuildable_resolutions(cls, shape):
    """A resolution that is not 4 or 7 times 2**k (k >= 1) fails naming it and the valid ones."""
    with pytest.raises(GanrunError) as err:
        cls(shape)
    message = str(err.value)
    assert f"resolution {shape[1]}" in message
    assert "16, 28, 32, 64" in message
    assert "dataset.resolution" in message


def test_dcgan_rejects_non_square_images():
    """(C, H, W) with H != W is refused, naming the shape."""
    with pytest.raises(GanrunError, match=r"\(3, 32, 16\)"):
        DCGANGenerator((3, 32, 16))


@pytest.mark.parametrize("resolution", [8, 14, 56, 128])
def test_dcgan_builds_other_valid_resolutions(resolution):
    """Every 4 * 2**k and 7 * 2**k (k >= 1) works, not only the four common ones."""
    torch.manual_seed(0)
    G, D = (
        DCGANGenerator((1, resolution, resolution), z_dim=8, width=2),
        DCGANDiscriminator((1, resolution, resolution), width=2),
    )
    fake = G(torch.randn(2, 8))
    assert tuple(fake.shape) == (2, 1, resolution, resolution)
    assert tuple(D(fake).shape) == (2,)


def _scale_last(model: nn.Module, kind: type, factor: float) -> None:
    with torch.no_grad():
        layers(model, kind)[-1].weight.mul_(factor)


@pytest.mark.parametrize("shape", IMAGE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ["dcgan", "mlp"])
def test_image_generators_stay_in_range(kind, shape):
    """Images are tanh-bounded: even a huge last layer saturates at +-1, never beyond."""
    torch.manual_seed(0)
    G, _ = tiny_pair(kind, shape)
    _scale_last(G, nn.ConvTranspose2d if kind == "dcgan" else nn.Linear, 1e4)
    out = G(torch.randn(8, Z_DIM)).detach()
    assert -1.0 <= out.min().item() < -0.99
    assert 0.99 < out.max().item() <= 1.0


def test_mlp_point_generator_is_unbounded():
    """2-D points get a linear output (the grid25 modes sit at +-4, outside tanh's range)."""
    torch.manual_seed(0)
    G, _ = tiny_pair("mlp", (2,))
    _scale_last(G, nn.Linear, 1e3)
    out = G(torch.randn(64, Z_DIM)).detach()
    assert out.abs().max().item() > 10.0
    assert len(layers(G, nn.Tanh)) == 0


def test_mlp_depth_width_and_slope():
    """depth hidden layers of `width` units; slope 0 means ReLU, > 0 LeakyReLU with that slope."""
    G = MLPGenerator((1, 16, 16), z_dim=10, width=32, depth=3, slope=0.0)
    D = MLPDiscriminator((1, 16, 16), width=32, depth=3, slope=0.2)
    assert [(m.in_features, m.out_features) for m in layers(G, nn.Linear)] == [
        (10, 32),
        (32, 32),
        (32, 32),
        (32, 256),
    ]
    assert [(m.in_features, m.out_features) for m in layers(D, nn.Linear)] == [
        (256, 32),
        (32, 32),
        (32, 32),
        (32, 1),
    ]
    assert len(layers(G, nn.ReLU)) == 3 and len(layers(G, nn.LeakyReLU)) == 0
    assert [m.negative_slope for m in layers(D, nn.LeakyReLU)] == [0.2, 0.2, 0.2]

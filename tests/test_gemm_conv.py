"""Small-image convolutions as im2col + one matmul (trainer.gemm_conv_pixels, trainer=fast):
the same values and gradients as torch's kernels to float tolerance, double backward for the
penalties, only the layers and calls it is meant for, and runs that resume bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_cfg
from test_train import assert_bit_equal, metrics, run, run_and_resume
from torch import nn

from ganrun.errors import GanrunError
from ganrun.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganrun.training.gemm_conv import (
    MIN_WEIGHTS,
    GemmConv2d,
    GemmConvTranspose2d,
    conv2d_gemm,
    conv_transpose2d_gemm,
    gemm_convolutions,
)
from ganrun.training.perf import check_perf_keys

GEOMETRIES = [(4, 2, 1), (3, 1, 1), (4, 1, 0), (1, 1, 0), (5, 2, 2)]  # kernel, stride, padding


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


@pytest.mark.parametrize(("k", "s", "p"), GEOMETRIES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_and_its_gradients_match_torch(k, s, p, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 6, 9, 7).contiguous(memory_format=fmt).requires_grad_()  # not square
    w = torch.randn(5, 6, k, k).contiguous(memory_format=fmt).requires_grad_()
    b = torch.randn(5, requires_grad=True)
    grad = torch.randn_like(F.conv2d(x, w, b, s, p))
    want = torch.autograd.grad(F.conv2d(x, w, b, s, p), (x, w, b), grad)
    y = conv2d_gemm(x, w, b, s, p)
    assert y.shape == F.conv2d(x, w, b, s, p).shape
    assert close(y, F.conv2d(x, w, b, s, p))
    got = torch.autograd.grad(y, (x, w, b), grad)
    for g, e in zip(got, want):
        assert g.shape == e.shape and close(g, e)


@pytest.mark.parametrize(("k", "s", "p"), GEOMETRIES)
def test_transposed_conv_and_its_gradients_match_torch(k, s, p):
    torch.manual_seed(1)
    x = torch.randn(2, 6, 5, 4).requires_grad_()  # not square: rows and columns kept apart
    w = torch.randn(6, 3, k, k).requires_grad_()
    b = torch.randn(3, requires_grad=True)
    ref = F.conv_transpose2d(x, w, b, s, p)
    grad = torch.randn_like(ref)
    want = torch.autograd.grad(ref, (x, w, b), grad)
    y = conv_transpose2d_gemm(x, w, b, s, p)
    assert y.shape == ref.shape and close(y, ref)
    for g, e in zip(torch.autograd.grad(y, (x, w, b), grad), want):
        assert close(g, e)


def test_double_backward_is_exact_in_float64():
    """R1 and gradient penalties differentiate the input gradient: gradgradcheck both ops."""
    torch.manual_seed(2)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(3, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    conv = lambda a, b: conv2d_gemm(a, b, None, 2, 1)  # noqa: E731
    convt = lambda a, b: conv_transpose2d_gemm(a, b, None, 2, 1)  # noqa: E731
    assert torch.autograd.gradcheck(conv, (x, w))
    assert torch.autograd.gradgradcheck(conv, (x, w))
    assert torch.autograd.gradcheck(convt, (x, wt))
    assert torch.autograd.gradgradcheck(convt, (x, wt))


def gemm_calls(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the layers whose call on this input took the GEMM path."""
    taken: list[str] = []
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, args, name=name: taken.append(name) if mod.uses_gemm(args[0]) else None
        )
        for name, m in model.named_modules()
        if isinstance(m, (GemmConv2d, GemmConvTranspose2d))
    ]
    model(x)
    for h in hooks:
        h.remove()
    return taken


def test_dcgan64_takes_the_path_only_on_4x4_images():
    """DCGAN-64 at 16 pixels: G's 1->4 and 4->8 layers and D's 8->4 layer; the rest stays on
    torch's kernels (G's 8->16 and D's 16->8 layers have the weights but not the small images,
    the others too few weights). Outputs, R1's gradients and the state dict are unchanged."""
    torch.manual_seed(3)
    G, D = DCGANGenerator((3, 64, 64)), DCGANDiscriminator((3, 64, 64))
    G2, D2 = DCGANGenerator((3, 64, 64)), DCGANDiscriminator((3, 64, 64))
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    assert gemm_convolutions(G2, 16) == 3 and gemm_convolutions(D2, 16) == 2
    z, x = torch.randn(2, 100), torch.randn(2, 3, 64, 64, requires_grad=True)
    assert gemm_calls(G2, z) == ["net.0", "net.3"]
    assert gemm_calls(D2, x) == ["net.8"]
    assert close(G2(z), G(z)) and close(D2(x), D(x))
    assert list(G2.state_dict()) == list(G.state_dict())

    def r1(d: nn.Module) -> torch.Tensor:
        (g,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
        return g.pow(2).sum()

    want = torch.autograd.grad(r1(D), list(D.parameters()))
    got = torch.autograd.grad(r1(D2), list(D2.parameters()))
    for a, b in zip(got, want):
        assert close(a, b, 1e-4)


C = 192  # 192 x 192 x 3 x 3 = 331,776 weights, over MIN_WEIGHTS


def test_other_calls_keep_torchs_kernels():
    conv = nn.Conv2d(C, C, 3, padding=1)
    assert conv.weight.numel() >= MIN_WEIGHTS and gemm_convolutions(conv, 16) == 1
    small, big = torch.randn(1, C, 4, 4), torch.randn(1, C, 5, 5)
    assert conv.uses_gemm(small) and not conv.uses_gemm(big)  # 16 output pixels, 25
    assert not conv.uses_gemm(small.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not conv.uses_gemm(small)
    grouped = nn.Conv2d(2 * C, 2 * C, 3, padding=1, groups=2)
    reflect = nn.Conv2d(C, C, 3, padding=1, padding_mode="reflect")
    assert gemm_convolutions(nn.Sequential(grouped, reflect), 16) == 2
    assert not grouped.uses_gemm(small.repeat(1, 2, 1, 1)) and not reflect.uses_gemm(small)
    padded = nn.ConvTranspose2d(C, C, 3, 2, 1, output_padding=1)
    gemm_convolutions(padded, 16)
    assert not padded.uses_gemm(small)
    assert padded(small).shape == (1, C, 8, 8)


def test_small_spectral_norm_layers_and_zero_are_left_alone():
    few = nn.Conv2d(C // 2, C // 2, 3)  # a quarter of the weights: torch's kernel is as fast
    sn = nn.utils.parametrizations.spectral_norm(nn.Conv2d(C, C, 3))
    assert gemm_convolutions(nn.Sequential(few, sn), 16) == 0
    assert type(few) is nn.Conv2d
    plain = nn.Conv2d(C, C, 3)
    assert gemm_convolutions(plain, 0) == 0 and type(plain) is nn.Conv2d


def test_trainer_fast_turns_it_on():
    assert compose_cfg("trainer=fast").trainer.gemm_conv_pixels == 16
    assert compose_cfg().trainer.gemm_conv_pixels == 0


def test_a_negative_value_is_refused_by_name():
    check_perf_keys(compose_cfg("trainer.gemm_conv_pixels=0").trainer)
    with pytest.raises(GanrunError, match=r"trainer.gemm_conv_pixels=-1 must be >= 0"):
        check_perf_keys(compose_cfg("trainer.gemm_conv_pixels=-1").trainer)


def test_a_run_with_it_matches_a_run_without_and_resumes_bit_for_bit(tmp_path):
    """trainer=fast with and without GEMM convolutions (G's 4->8 layer at width 64 has 524k
    weights): the first step's losses agree to float tolerance; with them on, resuming from
    step 2 gives step 4 bit for bit."""
    wide = ("trainer=fast", "model.generator.width=64")
    run(tmp_path / "on", *wide)
    run(tmp_path / "off", *wide, "trainer.gemm_conv_pixels=0")
    on, off = metrics(tmp_path / "on")[0], metrics(tmp_path / "off")[0]
    for key in ("loss/d", "loss/g"):
        assert on[key] != 0.0 and abs(on[key] - off[key]) < 1e-5 * max(1.0, abs(off[key]))
    a, b, rows_a, rows_b = run_and_resume(tmp_path / "resume", *wide)
    assert_bit_equal(a["players"], b["players"])
    drop = ("perf/img_per_s", "time")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a][2:] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows_b
    ]

"""Single-device speed paths on CPU: channels_last, optimizer flags, compile, AMP penalties,
device-resident batches, backend flags. The CUDA-only halves live in test_speed_gpu.py."""

from __future__ import annotations

import copy
import functools
import logging

import pytest
import torch
from conftest import compose_cfg
from omegaconf import OmegaConf
from test_train import TENSOR_KEYS, assert_bit_equal, load, metrics, run, run_and_resume
from torch import nn

from ganrun.build import build_generator, build_loss, build_state, check_trainer
from ganrun.data.base import InMemoryImages, batch_indices
from ganrun.errors import GanrunError
from ganrun.losses.penalties import (
    DraganPenalty,
    GradientPenalty,
    R1Penalty,
    input_gradient,
)
from ganrun.training.amp import loss_scale
from ganrun.training.perf import (
    BackendFlags,
    channels_last,
    eager,
    match_optimizer_layout,
    optimizer_kwargs,
    restore_backend_flags,
    set_backend_flags,
)

CPU = torch.device("cpu")
CL = torch.channels_last


def plain(cfg):
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


# ------------------------------------------------------------------------ channels_last


def test_channels_last_gives_the_same_losses_and_gradients():
    """D and G in NHWC compute what they compute in NCHW: D's logits, and every gradient of
    a D and a G loss, agree to float32 rounding; the conv weights really are NHWC."""
    cfg = plain(compose_cfg())
    a = build_state(cfg, (1, 16, 16), CPU)
    b = build_state(cfg, (1, 16, 16), CPU)
    assert channels_last(b, (1, 16, 16)) is True
    # a conv with several input channels (with one, both layouts are the same strides)
    conv_b = next(p for p in b.players["D"].net.parameters() if p.dim() == 4 and p.shape[1] > 1)
    conv_a = next(p for p in a.players["D"].net.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert conv_b.is_contiguous(memory_format=CL) and not conv_a.is_contiguous(memory_format=CL)
    assert all(
        p.is_contiguous(memory_format=CL) for p in b.players["G"].ema.parameters() if p.dim() == 4
    )
    torch.manual_seed(0)
    real, z = torch.rand(8, 1, 16, 16) * 2 - 1, torch.randn(8, cfg.model.z_dim)

    def logits_after_backward(state, x):
        out = state.players["D"].net(x)
        (out.mean() - state.players["D"].net(state.players["G"].net(z)).mean()).backward()
        return out.detach()

    torch.testing.assert_close(
        logits_after_backward(b, real.contiguous(memory_format=CL)),
        logits_after_backward(a, real),
        atol=1e-5,
        rtol=1e-4,
    )
    for pa, pb in zip(
        [*a.players["G"].net.parameters(), *a.players["D"].net.parameters()],
        [*b.players["G"].net.parameters(), *b.players["D"].net.parameters()],
    ):
        torch.testing.assert_close(pb.grad, pa.grad, atol=1e-5, rtol=1e-4)


def test_channels_last_skips_points_and_mlps():
    """2-D point data and fully connected models stay as they are (nothing NHWC to gain)."""
    points = build_state(plain(compose_cfg("experiment=ring8")), (2,), CPU)
    assert channels_last(points, (2,)) is False
    mlp = build_state(plain(compose_cfg("model=mlp")), (1, 16, 16), CPU)
    assert channels_last(mlp, (1, 16, 16)) is False


def test_resume_with_channels_last_is_bit_exact(tmp_path):
    """trainer.channels_last=true trains, checkpoints plain tensors and resumes bit for bit."""
    ckpt_a, ckpt_b, _, _ = run_and_resume(tmp_path, "trainer.channels_last=true")
    for key in TENSOR_KEYS:
        assert_bit_equal(ckpt_a[key], ckpt_b[key], key)
    # and a channels_last checkpoint loads into a plain NCHW generator
    G = build_generator(plain(compose_cfg()).model, (1, 16, 16))
    G.load_state_dict(ckpt_a["players"]["G"]["net"], strict=True)


# --------------------------------------------------------------------------- optimizers


def adam(**kw):
    return functools.partial(torch.optim.Adam, lr=1e-3, **kw)


def test_optimizer_kwargs_follow_device_and_signature():
    """fused on CUDA, foreach on CPU, for optimizers that take them; the user's choice wins."""
    cuda = torch.device("cuda")  # a device object needs no GPU
    assert optimizer_kwargs(adam(), cuda) == {"fused": True}
    assert optimizer_kwargs(adam(), CPU) == {"foreach": True}
    assert optimizer_kwargs(adam(), cuda, fused=False) == {"foreach": True}
    assert optimizer_kwargs(adam(fused=False), cuda) == {}
    assert optimizer_kwargs(adam(foreach=False), CPU) == {}
    # LBFGS takes neither keyword
    assert optimizer_kwargs(functools.partial(torch.optim.LBFGS, lr=1.0), cuda) == {}


def test_build_state_passes_foreach_on_cpu():
    state = build_state(plain(compose_cfg()), (1, 16, 16), CPU)
    assert (
        state.players["G"].opt.defaults["foreach"] is True
        and not state.players["G"].opt.defaults["fused"]
    )
    rms = build_state(plain(compose_cfg("optimizer=rmsprop")), (1, 16, 16), CPU)
    assert rms.players["D"].opt.defaults["foreach"] is True


def fused_adam_step(param: torch.Tensor, moments_layout, fix: bool) -> torch.Tensor:
    """One fused Adam step on `param` with moments stored in `moments_layout`."""
    p = nn.Parameter(param.clone())
    opt = torch.optim.Adam([p], lr=0.1, fused=True)
    gen = torch.Generator().manual_seed(1)
    grad = torch.randn(p.shape, generator=gen)
    avg, avg_sq = torch.randn(p.shape, generator=gen), torch.rand(p.shape, generator=gen)
    opt.state[p] = {
        "step": torch.tensor(3.0),
        "exp_avg": avg.contiguous(memory_format=moments_layout),
        "exp_avg_sq": avg_sq.contiguous(memory_format=moments_layout),
    }
    # autograd gives a gradient the parameter's layout
    p.grad = torch.empty_like(p).copy_(grad)
    if fix:
        match_optimizer_layout(opt)
    opt.step()
    return p.detach().contiguous()


def test_match_optimizer_layout_repairs_fused_adam_after_a_layout_change():
    """A channels_last weight with contiguous Adam moments (a resumed checkpoint) is updated
    wrongly by fused Adam; match_optimizer_layout restores the consistent update."""
    w = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    expected = fused_adam_step(w, torch.contiguous_format, fix=False)  # one layout throughout
    w_cl = w.contiguous(memory_format=CL)
    fixed = fused_adam_step(w_cl, torch.contiguous_format, fix=True)
    broken = fused_adam_step(w_cl, torch.contiguous_format, fix=False)
    torch.testing.assert_close(fixed, expected)
    assert (broken - expected).abs().max() > 1e-3  # the bug the fix is for


# ------------------------------------------------------------------------ AMP penalties


class DeepLinear(nn.Module):
    """x -> three bias-free linear layers of weight 1e-3: dD/dx = 1.6e-8 everywhere, far
    below fp16's smallest subnormal (6e-8), so an unscaled fp16 backward gives exactly 0."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*[nn.Linear(4, n, bias=False) for n in (4, 4, 1)])
        for layer in self.net:
            nn.init.constant_(layer.weight, 1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def test_loss_scale_is_the_scalers_scale_or_none():
    enabled = torch.amp.GradScaler("cpu", init_scale=1024.0)
    torch.testing.assert_close(loss_scale(enabled, CPU), torch.tensor(1024.0))
    assert loss_scale(torch.amp.GradScaler("cpu", enabled=False), CPU) is None


def test_fp16_penalty_gradient_needs_the_scaler_recipe():
    """Under fp16 autocast the input gradient underflows to 0 unless taken of the scaled
    output and unscaled after (the AMP recipe); with it, it matches float32."""
    D, x = DeepLinear(), torch.randn(3, 4)
    exact = input_gradient(D, x)
    torch.testing.assert_close(exact, torch.full((3, 4), 1.6e-8))
    scale = loss_scale(torch.amp.GradScaler("cpu", init_scale=2.0**15), CPU)
    with torch.autocast("cpu", dtype=torch.float16):
        unscaled = input_gradient(D, x)
        recipe = input_gradient(D, x, scale)
    assert torch.equal(unscaled, torch.zeros(3, 4))
    torch.testing.assert_close(recipe, exact, rtol=2e-3, atol=0.0)


def test_scaled_gradient_is_unscaled_exactly():
    """In float32 the recipe returns the plain per-sample gradient; the raw gradient of the
    scaled batch mean it unscales is scale / B times that (what a penalty would see
    without the unscaling)."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    x, scale = torch.randn(5, 6), torch.tensor(512.0)
    plain_grad = input_gradient(D, x)
    torch.testing.assert_close(input_gradient(D, x, scale), plain_grad)
    xr = x.clone().requires_grad_(True)
    (raw,) = torch.autograd.grad(D(xr).mean() * scale, xr)
    torch.testing.assert_close(raw, plain_grad * 512.0 / 5)


def test_initial_scale_does_not_overflow_fp16_at_the_output():
    """The scaler's first scale, 2**16, is above fp16's max (65504): the recipe scales the
    batch mean, so D's fp16 output gradient is 2**16 / B and the result stays finite."""
    D, x = DeepLinear(), torch.randn(4, 4)
    scale = loss_scale(torch.amp.GradScaler("cpu"), CPU)
    assert scale.item() == 2.0**16
    with torch.autocast("cpu", dtype=torch.float16):
        grad = input_gradient(D, x, scale)
    torch.testing.assert_close(grad, torch.full((4, 4), 1.6e-8), rtol=5e-3, atol=0.0)


@pytest.mark.parametrize(
    "penalty", [GradientPenalty(), DraganPenalty(), R1Penalty()], ids=["gp", "dragan", "r1"]
)
def test_penalties_with_grad_scale_equal_float32(penalty):
    """Each penalty, given a grad scale, equals its unscaled float32 value (same RNG draws)."""
    D = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    torch.manual_seed(1)
    expected = penalty(D, real, fake)
    torch.manual_seed(1)
    scaled = penalty(D, real, fake, torch.tensor(4096.0))
    assert expected.item() > 1e-3  # not a trivially zero penalty
    torch.testing.assert_close(scaled, expected)


def test_d_loss_passes_grad_scale_and_penalty_d():
    """d_loss hands the penalties `penalty_D` (not D) and the grad scale: with a D whose
    penalty copy is twice as steep, the GP changes; the scale leaves it unchanged."""
    loss = build_loss(plain(compose_cfg("loss=wgan_gp")))
    D = nn.Linear(2, 1)
    nn.init.constant_(D.weight, 0.5)
    steep = copy.deepcopy(D)
    steep.weight.data.mul_(4.0)  # ||grad|| = 4 * sqrt(0.5): GP = (2.83 - 1)^2
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    _, logs = loss.d_loss(D, real, fake)
    _, logs_steep = loss.d_loss(D, real, fake, penalty_D=steep, grad_scale=torch.tensor(256.0))
    torch.testing.assert_close(logs["gp"], torch.tensor((0.5**0.5 - 1) ** 2))
    torch.testing.assert_close(logs_steep["gp"], torch.tensor((4 * 0.5**0.5 - 1) ** 2))
    torch.testing.assert_close(logs_steep["d/real"], logs["d/real"])  # D itself judged


def test_bf16_gradient_penalty_trains_on_cpu(tmp_path):
    """loss=wgan_gp under bf16 autocast on CPU: finite losses and a finite, positive GP."""
    run(tmp_path / "run", "loss=wgan_gp", "trainer.precision=bf16")
    rows = metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["gp"] is not None and 0.0 < r["gp"] < 10.0 for r in rows)


# ------------------------------------------------------------------------------- data


def test_batches_are_gathered_on_the_device():
    """The dataset goes to the device once; every batch (indices included) stays there.

    'meta' stands in for a GPU: any step through host memory would produce a CPU tensor.
    """
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    data = InMemoryImages(images, torch.arange(40) % 10, 10)
    batches = data.batches(8, seed=0, device="meta")
    for _ in range(7):  # past one epoch (5 batches): the next permutation moves too
        x, y = next(batches)
        assert (x.device.type, x.dtype, tuple(x.shape)) == ("meta", torch.float32, (8, 1, 8, 8))
        assert y.device.type == "meta"
    resident = data.on_device("meta")[0]
    next(data.batches(8, seed=1, device="meta"))  # a second iterator reuses the device copy
    assert data.on_device("meta")[0] is resident
    # on the CPU nothing is copied: the batches gather from the dataset's own tensor
    assert data.on_device("cpu")[0].data_ptr() == images.data_ptr()


def test_batch_indices_are_slices_of_one_device_permutation():
    """Each batch's indices are a view into the epoch's permutation (no per-step copy)."""
    first, second = (b for b, _ in zip(batch_indices(12, 4, seed=3), range(2)))
    assert first._base is not None and first._base is second._base
    assert len(set(torch.cat([first, second]).tolist())) == 8  # disjoint batches


# ------------------------------------------------------------------------------ compile


def test_compiled_run_checkpoints_plain_modules(tmp_path, caplog):
    """trainer.compile=true (aot_eager: no C compiler needed) with a gradient penalty trains,
    says once that the penalty runs eagerly, matches the eager run, and its checkpoint loads
    strictly into an uncompiled generator."""
    overrides = ("loss=wgan_gp", "trainer.compile_backend=aot_eager")
    with caplog.at_level(logging.INFO, logger="ganrun"):
        run(tmp_path / "compiled", "trainer.compile=true", *overrides)
    run(tmp_path / "eager", *overrides)
    log = (tmp_path / "compiled" / "train.log").read_text()
    assert log.count("need double backward") == 1 and "penalties (gp)" in log
    compiled = load(tmp_path / "compiled" / "checkpoints" / "last.pt")
    reference = load(tmp_path / "eager" / "checkpoints" / "last.pt")
    assert not any("_orig_mod" in k for k in compiled["players"]["G"]["net"]) and set(
        compiled["players"]["D"]["net"]
    ) == set(reference["players"]["D"]["net"])
    G = build_generator(plain(compose_cfg()).model, (1, 16, 16))
    G.load_state_dict(compiled["players"]["G"]["ema"], strict=True)
    for key, part in (("G", "net"), ("D", "net"), ("G", "ema")):
        for name, value in reference["players"][key][part].items():
            got = compiled["players"][key][part][name]
            torch.testing.assert_close(got, value, atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_inductor_compile_on_cpu(tmp_path):
    """The default backend (inductor, which needs a C compiler) trains 2 steps on CPU."""
    run(tmp_path / "run", "trainer.compile=true", "trainer.max_steps=2")
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.pt")
    G = build_generator(plain(compose_cfg()).model, (1, 16, 16))
    G.load_state_dict(ckpt["players"]["G"]["net"], strict=True)
    assert "compiled" in (tmp_path / "run" / "train.log").read_text()


def test_eager_is_the_module_under_compile():
    model = nn.Linear(2, 2)
    assert eager(model) is model
    assert eager(torch.compile(model, backend="eager")) is model


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("trainer.compile_mode=fastest",), r"trainer\.compile_mode=fastest.*max-autotune"),
        (
            ("trainer.compile=true", "trainer.compile_backend=nope"),
            r"trainer\.compile_backend=nope.*inductor",
        ),
        (
            (
                "trainer.compile=true",
                "trainer.compile_backend=aot_eager",
                "trainer.compile_mode=max-autotune",
            ),
            r"compile_mode=max-autotune only applies to trainer\.compile_backend=inductor",
        ),
    ],
    ids=["mode", "backend", "mode-without-inductor"],
)
def test_bad_compile_keys_fail_up_front(overrides, message):
    with pytest.raises(GanrunError, match=message):
        check_trainer(plain(compose_cfg(*overrides)).trainer, CPU)


# ------------------------------------------------------------------------ backend flags


def test_backend_flags_are_set_for_cuda_and_restored():
    """TF32 and cuDNN autotuning go on for a CUDA run and back to what they were after;
    a CPU run changes nothing. (Setting the flags needs no GPU.)"""
    before = BackendFlags.current()
    trainer = plain(compose_cfg("trainer.tf32=true", "trainer.cudnn_benchmark=true")).trainer
    assert set_backend_flags(CPU, trainer) is None and BackendFlags.current() == before
    previous = set_backend_flags(torch.device("cuda"), trainer)
    try:
        assert BackendFlags.current() == BackendFlags("high", True, True)
    finally:
        restore_backend_flags(previous)
    assert previous == before and BackendFlags.current() == before
    off = plain(compose_cfg("trainer.tf32=false", "trainer.cudnn_benchmark=false")).trainer
    previous = set_backend_flags(torch.device("cuda"), off)
    try:
        assert BackendFlags.current() == BackendFlags("highest", False, False)
    finally:
        restore_backend_flags(previous)
    assert BackendFlags.current() == before

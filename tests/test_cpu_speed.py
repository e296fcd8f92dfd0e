"""CPU speed levers: fused Adam on CPU (trainer.fused_optimizer_cpu, trainer=fast) and glibc
keeping freed memory (trainer.keep_freed_memory). Each is checked for giving the same numbers:
to float tolerance for the fused optimizer, bit for bit for the allocator."""

from __future__ import annotations

import functools
import platform

import pytest
import torch
from conftest import compose_cfg
from omegaconf import OmegaConf
from test_train import assert_bit_equal, load, metrics, run

from ganrun.build import build_state
from ganrun.training.perf import keep_freed_memory, optimizer_kwargs

CPU = torch.device("cpu")
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def plain(cfg):
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def adam(**kw):
    return functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999), **kw)


def test_fused_cpu_is_asked_for_only_with_the_key():
    assert optimizer_kwargs(adam(), CPU) == {"foreach": True}
    assert optimizer_kwargs(adam(), CPU, fused_cpu=True) == {"fused": True}
    assert optimizer_kwargs(adam(), CPU, fused=False, fused_cpu=True) == {"foreach": True}
    assert optimizer_kwargs(adam(foreach=True), CPU, fused_cpu=True) == {}  # the user's choice


def test_trainer_fast_builds_fused_adam_and_cpu_keeps_foreach():
    fast = build_state(plain(compose_cfg("trainer=fast")), (1, 16, 16), CPU)
    cpu = build_state(plain(compose_cfg()), (1, 16, 16), CPU)
    for name in ("G", "D"):
        assert fast.players[name].opt.defaults["fused"] is True
        assert cpu.players[name].opt.defaults["foreach"] is True
        assert not cpu.players[name].opt.defaults["fused"]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fused_cpu_adam_equals_foreach_to_float_tolerance(layout):
    """20 steps of the same gradients: fused and foreach Adam move the weights the same way
    (they really move, by ~20 x lr) up to float32 rounding, NCHW and NHWC weights alike."""
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(8, 4, 3, 3, generator=gen), torch.randn(8, generator=gen)]
    a = [
        torch.nn.Parameter(
            t.clone().contiguous(memory_format=layout) if t.dim() == 4 else t.clone()
        )
        for t in init
    ]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opt_a, opt_b = adam(foreach=True)(a), adam(fused=True)(b)
    for _ in range(20):
        for pa, pb in zip(a, b):
            grad = torch.randn(pa.shape, generator=gen)
            pa.grad = grad.contiguous(memory_format=layout) if grad.dim() == 4 else grad
            pb.grad = pa.grad.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb, start in zip(a, b, init):
        moved = (pa.detach() - start).abs().max().item()
        assert 1e-3 < moved < 1e-2  # lr 2e-4 x 20 steps x Adam's ~unit step
        assert (pa.detach() - pb.detach()).abs().max().item() < 1e-6


def test_trainer_fast_fused_run_matches_foreach_run(tmp_path):
    """A smoke run with trainer=fast and the same run with foreach Adam log the same losses to
    float tolerance."""
    fused = run(tmp_path / "fused", "trainer=fast")
    foreach = run(tmp_path / "foreach", "trainer=fast", "trainer.fused_optimizer_cpu=false")
    for key in ("loss/d", "loss/g"):
        assert abs(fused[key] - foreach[key]) < 1e-4 * max(1.0, abs(foreach[key]))
        assert fused[key] != 0.0


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_keep_freed_memory_takes_on_glibc():
    assert keep_freed_memory() is True


def test_keep_freed_memory_changes_no_number(tmp_path):
    """The same smoke run with and without the allocator setting: every logged value and every
    tensor of the last checkpoint are equal bit for bit."""
    run(tmp_path / "on", "trainer.keep_freed_memory=true")
    run(tmp_path / "off", "trainer.keep_freed_memory=false")
    drop = ("perf/img_per_s", "time")
    rows = [
        [{k: v for k, v in r.items() if k not in drop} for r in metrics(tmp_path / d)]
        for d in ("on", "off")
    ]
    assert len(rows[0]) == 4 and rows[0] == rows[1]
    on, off = (load(tmp_path / d / "checkpoints" / "last.pt") for d in ("on", "off"))
    assert_bit_equal(on["players"], off["players"])


@pytest.mark.parametrize(
    ("mode", "passed"), [("reduce-overhead", "reduce-overhead"), ("default", None)]
)
def test_compile_mode_reaches_torch_compile(monkeypatch, mode, passed):
    """trainer.compile_mode=reduce-overhead (CUDA graphs on a GPU) is what torch.compile gets
    for G and D; the CPU can only check the wiring, with torch.compile recorded, not run."""
    import ganrun.training.perf as perf

    seen = []
    monkeypatch.setattr(perf, "compile_works", lambda backend, device: True)
    monkeypatch.setattr(perf.torch, "compile", lambda net, **kw: seen.append(kw) or net)
    cfg = plain(compose_cfg("trainer.compile=true", f"trainer.compile_mode={mode}"))
    state = build_state(cfg, (1, 16, 16), CPU)
    assert perf.compile_models(state, cfg.trainer, []) is True
    assert seen == [{"backend": "inductor", "mode": passed}] * 2

"""The CUDA halves of the speed work: fp16 with a grad scaler, bf16 penalties, compile,
channels_last, device-resident data, a sync-free hot loop, the benchmark in --quick mode.

Marked `gpu` (skipped by default; `pytest -m gpu` on a machine with a CUDA device).
"""

from __future__ import annotations

import io
import math
import subprocess
import sys

import pytest
import torch
from conftest import REPO, compose_cfg
from omegaconf import OmegaConf
from rich.console import Console
from test_train import load, metrics, run

from ganrun.build import build_generator, build_loss, build_state
from ganrun.data.base import InMemoryImages
from ganrun.tracking.tracker import Tracker
from ganrun.training.loop import LoopConfig, fit
from ganrun.training.perf import BackendFlags, accelerate, channels_last

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CUDA = ("trainer.device=cuda",)


def plain(cfg):
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def finite(rows: list[dict], key: str) -> list[bool]:
    return [r.get(key) is not None and math.isfinite(r[key]) for r in rows]


@pytest.mark.parametrize("loss", ["wgan_gp", "dragan"])
def test_fp16_with_grad_scaler_and_penalty(tmp_path, loss):
    """fp16 + GradScaler + a gradient penalty: finite losses and penalty from the second step
    on (the scaler may skip the first while it finds its scale), a finite positive scale."""
    run(tmp_path / "run", *CUDA, f"loss={loss}", "trainer.precision=fp16", "trainer.max_steps=6")
    rows = metrics(tmp_path / "run")
    key = "gp" if loss == "wgan_gp" else "dragan"
    assert all(finite(rows[1:], "loss/d")) and all(finite(rows[1:], key))
    scale = load(tmp_path / "run" / "checkpoints" / "last.pt")["scaler_d"]["scale"]
    assert 1.0 <= scale <= 2.0**16


def test_bf16_penalty_matches_fp32_on_cuda():
    """WGAN-GP's penalty of a DCGAN D under CUDA bf16 autocast is within bf16 rounding of the
    fp32 value, on the same interpolates."""
    cfg = plain(compose_cfg(*CUDA, "loss=wgan_gp"))
    state = build_state(cfg, (1, 16, 16), torch.device("cuda"))
    loss = build_loss(cfg)
    real, fake = torch.rand(8, 1, 16, 16, device="cuda") * 2 - 1, torch.randn(8, 1, 16, 16).cuda()
    torch.manual_seed(0)
    _, fp32 = loss.d_loss(state.players["D"].net, real, fake)
    torch.manual_seed(0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, bf16 = loss.d_loss(state.players["D"].net, real, fake)
    torch.testing.assert_close(bf16["gp"], fp32["gp"], rtol=0.05, atol=1e-3)


def test_compile_on_cuda_trains_and_checkpoints_plain_modules(tmp_path):
    """inductor on CUDA with a penalty: trains, logs the eager fallback once, and the
    checkpoint loads strictly into an uncompiled generator."""
    run(tmp_path / "run", *CUDA, "loss=wgan_gp", "trainer.compile=true", "trainer.max_steps=3")
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("need double backward") == 1
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.pt")
    G = build_generator(plain(compose_cfg()).model, (1, 16, 16))
    G.load_state_dict(ckpt["players"]["G"]["ema"], strict=True)
    assert all(finite(metrics(tmp_path / "run"), "loss/d"))


def test_compile_with_spectral_norm_on_cuda(tmp_path):
    """model=resnet (spectral norm on D) compiles with inductor and trains."""
    run(tmp_path / "run", *CUDA, "model=resnet", "trainer.compile=true", "trainer.max_steps=3")
    assert all(finite(metrics(tmp_path / "run"), "loss/d"))


def test_channels_last_on_cuda_matches_contiguous():
    """NHWC on CUDA (TF32 off, so only the layout differs): same logits as NCHW."""
    previous = BackendFlags.current()
    BackendFlags("highest", False, False).apply()
    try:
        cfg = plain(compose_cfg(*CUDA))
        a = build_state(cfg, (1, 16, 16), torch.device("cuda"))
        b = build_state(cfg, (1, 16, 16), torch.device("cuda"))
        assert channels_last(b, (1, 16, 16))
        x = torch.rand(8, 1, 16, 16, device="cuda") * 2 - 1
        out_b = b.D(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(out_b, a.D(x), atol=1e-4, rtol=1e-3)
    finally:
        previous.apply()


def test_data_is_resident_on_the_gpu():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    data = InMemoryImages(images, None, None)
    x, _ = next(data.batches(16, 0, 0, "cuda"))
    resident = data.on_device("cuda")[0]
    assert x.is_cuda and resident.is_cuda
    next(data.batches(16, 1, 0, "cuda"))
    assert data.on_device("cuda")[0] is resident  # copied once
    torch.testing.assert_close(x.cpu(), next(data.batches(16, 0, 0, "cpu"))[0])


def sync_checked(batches, first: int, last: int):
    """Yield the batches, with CUDA syncs made errors from batch `first` until batch `last`."""
    for i, batch in enumerate(batches):
        torch.cuda.set_sync_debug_mode("error" if first <= i < last else "default")
        yield batch


@pytest.mark.parametrize("overrides", [(), ("loss=wgan_gp",)], ids=["ns", "wgan_gp"])
def test_hot_loop_never_syncs(tmp_path, overrides):
    """loop.fit over bf16 steps 3..9 of 10 (log_every=0: a log only at the end) with any
    host-device synchronisation raising an error: none happens between log steps."""
    cfg = plain(compose_cfg(*CUDA, "trainer.precision=bf16", *overrides))
    trainer, device = cfg.trainer, torch.device("cuda")
    images = torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8)
    data = InMemoryImages(images, None, None)
    state = build_state(cfg, data.shape, device)
    method = state.components["method"]
    batches = accelerate(state, data.batches(8, 0, 0, device), trainer, data.shape, [])
    loop_cfg = LoopConfig(max_steps=10, log_every=0, sample_every=0, ckpt_every=0)
    try:
        fit(
            state,
            method,
            sync_checked(batches, 2, 9),
            loop_cfg,
            Tracker(tmp_path, Console(file=io.StringIO())),
            tmp_path,
            lambda periodic: None,
            fixed_inputs=method.sample_inputs(4, 0),
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert state.step == 10


def test_bench_speed_quick_on_cuda():
    """scripts/bench_speed.py --quick runs on the GPU and prints every mode and the table."""
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_speed.py"), "--quick", "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout
    for mode in ("reference (eager fp32)", "ganrun fp32", "ganrun bf16", "ganrun bf16+compile"):
        assert out.count(mode) >= 2, out
    assert "MiB" in out and "Scaling" in out

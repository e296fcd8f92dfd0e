"""Gradient accumulation (trainer.accumulate=k): k micro-batches of B make the update of one
batch of kB, penalties included, and the loop draws k batches per phase."""

from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import compose_cfg
from test_train import TENSOR_KEYS, assert_bit_equal, load, run, run_and_resume

import ganrun.losses.penalties as penalties
from ganrun.build import build_loss, build_state
from ganrun.training.methods.gan import MicroBatch, d_step, g_step

CPU = torch.device("cpu")
K, B = 4, 4


@pytest.fixture
def fixed_interpolation(monkeypatch):
    """The gradient penalty's interpolation weights taken in order from one fixed draw, so a
    batch of kB and k micro-batches of B use the same weight for the same sample."""
    alphas = torch.rand(K * B, generator=torch.Generator().manual_seed(5))
    cursor = {"at": 0}

    def interpolate(a, b):
        n = a.shape[0]
        alpha = alphas[cursor["at"] : cursor["at"] + n].view(n, *([1] * (a.dim() - 1)))
        cursor["at"] = (cursor["at"] + n) % (K * B)
        return torch.lerp(a.detach(), b.detach().to(a.dtype), alpha.to(a.dtype))

    monkeypatch.setattr(penalties, "random_interpolate", interpolate)


def one_update(cfg, d_micro, g_micro):
    """A fresh state (same seed), one D step and one G step; the gradients and the new weights."""
    state = build_state(cfg, (1, 16, 16), CPU)
    G, D = state.players["G"], state.players["D"]
    loss = build_loss(cfg)
    d_logs = d_step(G, D, loss, d_micro, contextlib.nullcontext)
    d_grads = [p.grad.clone() for p in D.net.parameters()]
    g_logs = g_step(G, D, loss, g_micro, contextlib.nullcontext)
    g_grads = [p.grad.clone() for p in G.net.parameters()]
    weights = [p.detach().clone() for p in [*G.net.parameters(), *D.net.parameters()]]
    return d_grads, g_grads, weights, {**d_logs, **g_logs}


@pytest.mark.parametrize("loss", ["ns", "wgan_gp"])
def test_k_micro_batches_equal_one_batch_of_kb(loss, fixed_interpolation):
    """MLP G and D (no batch statistics): D's and G's gradients, the weights after the Adam
    steps and the logged losses agree to float32 rounding, and training did move."""
    cfg = compose_cfg("model=mlp", f"loss={loss}")
    gen = torch.Generator().manual_seed(3)
    real = torch.rand(K * B, 1, 16, 16, generator=gen) * 2 - 1
    z_d, z_g = torch.randn(2, K * B, cfg.model.z_dim, generator=gen)
    big = one_update(cfg, [MicroBatch(real, None, z_d)], [MicroBatch(real, None, z_g)])
    rows = [slice(i * B, (i + 1) * B) for i in range(K)]
    small = one_update(
        cfg,
        [MicroBatch(real[r], None, z_d[r]) for r in rows],
        [MicroBatch(real[r], None, z_g[r]) for r in rows],
    )
    for name, a, b in zip(("D grads", "G grads", "weights"), big[:3], small[:3]):
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-6, msg=name)
    assert max(g.abs().max().item() for g in big[0]) > 1e-3  # D's gradient is not ~0
    assert set(big[3]) == set(small[3]) and ("gp" in big[3]) == (loss == "wgan_gp")
    for key in big[3]:
        torch.testing.assert_close(small[3][key], big[3][key], rtol=1e-4, atol=1e-6, msg=key)


def test_accumulate_draws_k_batches_and_steps_once(tmp_path):
    """trainer.accumulate=2 with n_critic=2 over 4 steps: one optimizer step per phase, not 2:
    Adam's step counts are 8 for D (2 per step) and 4 for G, as without accumulation."""
    run(tmp_path / "acc", "trainer.accumulate=2", "trainer.n_critic=2")
    ckpt = load(tmp_path / "acc" / "checkpoints" / "last.pt")
    steps = {n: {int(s["step"]) for s in ckpt["players"][n]["opt"]["state"].values()} for n in "GD"}
    assert steps == {"G": {4}, "D": {8}}


def test_resume_with_accumulation_is_bit_exact(tmp_path):
    """The batch stream restarts at step x n_critic x accumulate: resuming is bit for bit."""
    ckpt_a, ckpt_b, rows_a, rows_b = run_and_resume(tmp_path, "trainer.accumulate=3")
    for key in TENSOR_KEYS:
        assert_bit_equal(ckpt_a[key], ckpt_b[key], key)
    assert [r["loss/d"] for r in rows_a[2:]] == [r["loss/d"] for r in rows_b]


def test_accumulate_must_be_positive(tmp_path):
    from ganrun.errors import GanrunError

    with pytest.raises(GanrunError, match="trainer.accumulate=0 must be positive"):
        run(tmp_path / "bad", "trainer.accumulate=0")
    assert not (tmp_path / "bad").exists()

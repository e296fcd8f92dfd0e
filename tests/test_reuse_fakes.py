"""trainer.reuse_fakes: G's update reuses the last D step's fakes (the PyTorch DCGAN example's
way): one G forward per step, the same G gradient as a fresh forward on the same latents,
and resume still bit for bit."""

from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import compose_cfg
from test_train import TENSOR_KEYS, assert_bit_equal, run_and_resume

from ganrun.build import build_data, build_loss, build_state
from ganrun.training.methods.gan import MicroBatch, d_step, g_step

CPU = torch.device("cpu")


def count_g_forwards(state) -> list[int]:
    calls = [0]
    state.players["G"].net.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("n_critic", [1, 3])
@pytest.mark.parametrize("reuse", [False, True])
def test_one_g_forward_per_step_when_reusing(reuse, n_critic):
    """Per step G runs once per D step, plus once for its own step unless it reuses the last
    D step's fakes (so n_critic=3 reuses only the last D step's)."""
    cfg = compose_cfg(f"trainer.reuse_fakes={str(reuse).lower()}", f"trainer.n_critic={n_critic}")
    data = build_data(cfg)
    state = build_state(cfg, data.shape, CPU, data.num_classes)
    calls = count_g_forwards(state)
    state.components["method"].step(state, data.batches(8, 0, 0, CPU), 0)
    assert calls[0] == n_critic + (0 if reuse else 1)


@pytest.mark.parametrize("loss", ["ns", "wgan_gp", "hinge"])
def test_reused_fakes_give_the_fresh_forward_gradient(loss):
    """G's gradient from the kept fakes equals G's gradient from a fresh G(z) on the same z
    (G's weights do not change in D's step; BatchNorm uses the batch's statistics); D's
    update is the same either way."""
    cfg = compose_cfg(f"loss={loss}")
    gen = torch.Generator().manual_seed(4)
    real = torch.rand(8, 1, 16, 16, generator=gen) * 2 - 1
    z = torch.randn(8, cfg.model.z_dim, generator=gen)

    def update(keep: bool):
        torch.manual_seed(9)  # the penalty's interpolation weights: the same draw in both
        state = build_state(cfg, (1, 16, 16), CPU)
        G, D = state.players["G"], state.players["D"]
        loss_fn = build_loss(cfg)
        micro = [MicroBatch(real, None, z)]
        d_step(G, D, loss_fn, micro, contextlib.nullcontext, keep_fakes=keep)
        assert (micro[0].fake is not None) == keep
        d_grads = [p.grad.clone() for p in D.net.parameters()]
        g_step(G, D, loss_fn, micro, contextlib.nullcontext)
        assert micro[0].fake is None  # the graph is released
        return d_grads, [p.grad.clone() for p in G.net.parameters()]

    fresh, reused = update(False), update(True)
    for a, b in zip(fresh[0] + fresh[1], reused[0] + reused[1]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    assert max(g.abs().max().item() for g in fresh[1]) > 0


def test_resume_with_reuse_fakes_is_bit_exact(tmp_path):
    ckpt_a, ckpt_b, rows_a, rows_b = run_and_resume(tmp_path, "trainer=fast")
    for key in TENSOR_KEYS:
        assert_bit_equal(ckpt_a[key], ckpt_b[key], key)
    assert [r["loss/g"] for r in rows_a[2:]] == [r["loss/g"] for r in rows_b]


def test_fast_preset_turns_it_on_and_default_keeps_it_off():
    assert compose_cfg("trainer=fast").trainer.reuse_fakes is True
    assert compose_cfg().trainer.reuse_fakes is False


@pytest.mark.parametrize(
    "extra",
    [
        ("conditioning=projection",),
        ("trainer.accumulate=2",),
        ("loss=rsgan", "trainer.n_critic=2"),
        ("+method.g_regularisers.o._target_=ganrun.losses.regularisers.OrthogonalRegulariser",),
    ],
    ids=["conditional", "accumulate", "relativistic", "g-regulariser"],
)
def test_reuse_fakes_trains_with_the_other_options(tmp_path, extra):
    """Conditioning, accumulation, relativistic losses with n_critic, G regularisers: a smoke
    run with reuse_fakes finishes with finite losses at every step."""
    from test_train import metrics, run

    run(tmp_path / "r", "trainer.reuse_fakes=true", *extra)
    rows = metrics(tmp_path / "r")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(abs(r["loss/g"]) < 1e3 and abs(r["loss/d"]) < 1e3 for r in rows)

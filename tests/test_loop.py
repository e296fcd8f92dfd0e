"""The loop's building blocks: optimizer steps start from fresh gradients, cadences fire when due."""

from __future__ import annotations

import torch

from ganrun.training.loop import due, optimizer_step


def test_optimizer_step_uses_only_this_losss_gradient():
    """Two steps in a row: the second step's gradient is that of the second loss alone (no accumulation)."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    optimizer_step((w * torch.tensor([3.0, 4.0])).sum(), opt, scaler)  # grad (3, 4)
    torch.testing.assert_close(w.detach(), torch.tensor([0.7, -2.4]))
    optimizer_step((w * torch.tensor([1.0, 1.0])).sum(), opt, scaler)  # grad (1, 1), not (4, 5)
    torch.testing.assert_close(w.grad, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(w.detach(), torch.tensor([0.6, -2.5]))


def test_due_fires_on_multiples_and_on_the_last_step():
    """every=3 over 7 steps fires at 3, 6 and the final 7; every=0 fires only at the end."""
    assert [s for s in range(1, 8) if due(s, 3, 7)] == [3, 6, 7]
    assert [s for s in range(1, 8) if due(s, 0, 7)] == [7]


def test_optimizer_step_clips_the_global_gradient_norm():
    """clip=1 rescales a gradient of norm 5 to norm 1 before the SGD step."""
    w = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([w], lr=1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    optimizer_step((w * torch.tensor([3.0, 4.0])).sum(), opt, scaler, clip=1.0)
    torch.testing.assert_close(w.detach(), torch.tensor([-0.6, -0.8]))


def test_instance_noise_anneals_linearly_to_zero():
    """std 0.4 over 10 steps: 0.4 at step 0, 0.2 at step 5, 0 from step 10; off when 0."""
    from ganrun.training.loop import LoopConfig

    base = dict(max_steps=20, batch_size=2, n_critic=1, ema_decay=0.9, log_every=1)
    cfg = LoopConfig(
        **base, sample_every=0, ckpt_every=0, instance_noise=0.4, instance_noise_steps=10
    )
    assert [round(cfg.noise_std(s), 6) for s in (0, 5, 10, 15)] == [0.4, 0.2, 0.0, 0.0]
    assert LoopConfig(**base, sample_every=0, ckpt_every=0).noise_std(0) == 0.0


def test_instance_noise_perturbs_every_input_to_d():
    """with_instance_noise(D, 0.5) feeds D x + N(0, 0.25): the residual's std is about 0.5."""
    from ganrun.training.instance_noise import with_instance_noise

    torch.manual_seed(0)
    seen = []
    noisy = with_instance_noise(lambda x: seen.append(x) or x.sum(), 0.5)
    x = torch.zeros(20000)
    noisy(x)
    assert 0.49 < seen[0].std().item() < 0.51
    assert with_instance_noise(len, 0.0) is len

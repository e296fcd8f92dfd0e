"""The loop's building blocks: optimizer steps start from fresh gradients, cadences fire when due."""

from __future__ import annotations

import torch

from ganrun.training.loop import due
from ganrun.training.methods.steps import optimizer_step
from ganrun.training.players import Player


def player(opt: torch.optim.Optimizer) -> Player:
    return Player(torch.nn.Identity(), opt, torch.amp.GradScaler("cpu", enabled=False))


def test_optimizer_step_uses_only_this_losss_gradient():
    """Two steps in a row: the second step's gradient is that of the second loss alone (no accumulation)."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    optimizer_step((w * torch.tensor([3.0, 4.0])).sum(), player(opt))  # grad (3, 4)
    torch.testing.assert_close(w.detach(), torch.tensor([0.7, -2.4]))
    optimizer_step((w * torch.tensor([1.0, 1.0])).sum(), player(opt))  # grad (1, 1), not (4, 5)
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
    optimizer_step((w * torch.tensor([3.0, 4.0])).sum(), player(opt), clip=1.0)
    torch.testing.assert_close(w.detach(), torch.tensor([-0.6, -0.8]))


def test_instance_noise_anneals_linearly_to_zero():
    """std 0.4 over 10 steps: 0.4 at step 0, 0.2 at step 5, 0 from step 10; off when 0."""
    from ganrun.training.instance_noise import InstanceNoise

    noise = InstanceNoise(0.4, 10, max_steps=20)
    assert [round(noise.std(s), 6) for s in (0, 5, 10, 15)] == [0.4, 0.2, 0.0, 0.0]
    assert InstanceNoise(0.0, 10, max_steps=20).std(0) == 0.0
    assert [round(InstanceNoise(0.4, 0, max_steps=20).std(s), 6) for s in (10, 20)] == [0.2, 0.0]


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

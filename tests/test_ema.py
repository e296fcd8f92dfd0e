"""EMA rates: the fixed decay with its warm-up, and StyleGAN's half-life in images with ramp-up."""

from __future__ import annotations

import pytest
import torch

from ganrun.errors import GanrunError
from ganrun.training.ema import EmaRate, update_ema


def test_fixed_decay_warms_up_as_before():
    """min(decay, (1 + step) / (10 + step)): 0.1 at step 0, 1001/1010 at 1000, 0.999 late."""
    rate = EmaRate(decay=0.999)
    torch.testing.assert_close(
        [rate.beta(s, 0, 64) for s in (0, 1000, 100000)],
        [0.1, 1001 / 1010, 0.999],
        rtol=1e-12,
        atol=0,
    )


def test_half_life_in_images():
    """ema_kimg=10 with 64 images per step: beta = 0.5^(64/10000), whatever the step."""
    rate = EmaRate(kimg=10)
    for step in (0, 5, 10**6):
        torch.testing.assert_close(rate.beta(step, step * 64, 64), 0.5 ** (64 / 10000))


def test_rampup_caps_the_half_life_by_images_seen():
    """ema_rampup=0.05: after the first step (64 images) the half-life is 3.2 images, so
    beta = 0.5^20; after 10^6 images it is the full 10 kimg again."""
    rate = EmaRate(kimg=10, rampup=0.05)
    torch.testing.assert_close(rate.beta(0, 0, 64), 0.5**20, rtol=1e-12, atol=0)
    torch.testing.assert_close(rate.beta(99, 99 * 64, 64), 0.5 ** (64 / 320), rtol=1e-12, atol=0)
    torch.testing.assert_close(rate.beta(10**4, 64 * 10**4, 64), 0.5 ** (64 / 10000))


def test_after_one_half_life_half_the_old_weights_remain():
    """EMA of a constant 1 from 0: after ema_kimg x 1000 images, 0.5 of the start is left."""
    rate = EmaRate(kimg=0.256)  # 256 images = 4 steps of 64
    ema, model = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ema.weight.fill_(0.0)
        model.weight.fill_(1.0)
    for step in range(4):
        update_ema(ema, model, rate.beta(step, step * 64, 64))
    torch.testing.assert_close(ema.weight.item(), 0.5, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"decay": 1.0}, "ema_decay=1.0"),
        ({"kimg": -1}, "ema_kimg=-1"),
        ({"rampup": 0}, "ema_rampup=0"),
    ],
)
def test_bad_rates_name_the_key(kwargs, key):
    with pytest.raises(GanrunError, match=key):
        EmaRate(**kwargs)

"""The image pool (Shrivastava et al. 2017): filling, then 50% swaps, resume-exact."""

from __future__ import annotations

import pytest
import torch

from ganrun.errors import GanrunError
from ganrun.training.image_pool import ImagePool


def images(*values: float) -> torch.Tensor:
    """One 1x1x1 image per value, so contents read as numbers."""
    return torch.tensor(values).view(-1, 1, 1, 1)


def values(t: torch.Tensor) -> list[float]:
    return t.flatten().tolist()


def test_pool_fills_first_returning_every_new_image():
    """Until it holds `size` images, the pool stores each fake and returns it unchanged."""
    pool = ImagePool(3, torch.Generator().manual_seed(0))
    assert values(pool.query(images(1, 2))) == [1, 2]
    assert values(pool.query(images(3))) == [3]
    assert values(pool.images) == [1, 2, 3] and pool.count == 3


def test_pool_swaps_half_the_time_with_the_seeded_draws():
    """Full pool: per image one uniform u and one index j; u < 0.5 returns stored[j] and
    stores the new image there, else the new image passes. The expected contents are
    replayed by hand from the same seed."""
    seed = 7
    pool = ImagePool(2, torch.Generator().manual_seed(seed))
    pool.query(images(10, 20))  # filling: no draws
    got = values(pool.query(images(30, 40, 50, 60)))
    replay = torch.Generator().manual_seed(seed)
    stored, expected, swaps = [10.0, 20.0], [], 0
    for new in (30.0, 40.0, 50.0, 60.0):
        u = torch.rand((), generator=replay).item()
        j = int(torch.randint(2, (), generator=replay))
        if u < 0.5:
            expected.append(stored[j])
            stored[j] = new
            swaps += 1
        else:
            expected.append(new)
    assert got == expected and values(pool.images) == stored
    assert 0 < swaps < 4  # this seed takes both branches


def test_pool_swaps_about_half_of_many_images():
    """Over 4000 queries of a full pool, the share of returned images that came from the pool
    is 1/2 within 3 standard deviations (sqrt(0.25/4000) = 0.0079)."""
    pool = ImagePool(50, torch.Generator().manual_seed(1))
    pool.query(-torch.ones(50, 1, 1, 1))
    new = torch.arange(4000, dtype=torch.float32).view(-1, 1, 1, 1)
    out = pool.query(new)
    swapped = (out != new).float().mean().item()
    assert 0.5 - 0.024 < swapped < 0.5 + 0.024


def test_pool_size_zero_returns_the_fakes_and_draws_nothing():
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    pool = ImagePool(0, gen)
    x = torch.randn(4, 1, 2, 2)
    torch.testing.assert_close(pool.query(x), x, rtol=0, atol=0)
    assert torch.equal(gen.get_state(), before) and pool.count == 0


def test_pool_state_round_trip_continues_bit_exact():
    """A pool restored from state_dict (contents and generator) answers the next queries
    exactly as the original does."""
    a = ImagePool(4, torch.Generator().manual_seed(5))
    a.query(torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0)))
    b = ImagePool(4, torch.Generator().manual_seed(999))  # a different stream until loaded
    b.load_state_dict(a.state_dict())
    nxt = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(b.query(nxt), a.query(nxt), rtol=0, atol=0)
    torch.testing.assert_close(b.images, a.images, rtol=0, atol=0)


def test_pool_with_the_global_rng_is_repeatable_from_its_seed():
    """generator=None draws from the global RNG: the same global seed, the same answers."""
    outs = []
    for _ in range(2):
        torch.manual_seed(11)
        pool = ImagePool(2)
        pool.query(images(1, 2))
        outs.append(values(pool.query(images(3, 4, 5, 6))))
    assert outs[0] == outs[1]


def test_pool_detaches_and_rejects_negative_sizes():
    x = torch.randn(2, 1, 1, 1, requires_grad=True)
    assert not ImagePool(1).query(x * 2).requires_grad
    with pytest.raises(GanrunError, match="method.pool_size=-1"):
        ImagePool(-1)

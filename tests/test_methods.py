"""The method contract, for every conf/method/*.yaml: players, one step, samples, state.

A new method YAML is composed, built and stepped here without anyone remembering to add it.
"""

from __future__ import annotations

import pytest
import torch
from conftest import compose_cfg
from test_config import options
from test_train import assert_bit_equal

from ganrun.build import build_data, build_method, build_state
from ganrun.data.translation import Translating
from ganrun.training.methods.base import RunSpec
from ganrun.training.players import Player
from ganrun.training.state import TrainState

CPU = torch.device("cpu")


# The data and tiny widths each method needs (translation methods: the embedded digits as
# edges -> digit pairs; StarGAN: the digits' classes as its domains).
TINY_TRANSLATOR = ["method.generator.width=4", "method.discriminator.width=4"]
EDGES = ["dataset=edges", "dataset@dataset.source=digits"]
METHOD_OVERRIDES = {
    "pix2pix": [*EDGES, *TINY_TRANSLATOR],
    "cyclegan": [*EDGES, *TINY_TRANSLATOR, "method.generator.blocks=1"],
    "stargan": [*TINY_TRANSLATOR, "method.generator.blocks=1"],
}


def built(name: str, *overrides: str):
    cfg = compose_cfg(f"method={name}", *METHOD_OVERRIDES.get(name, []), *overrides)
    data = build_data(cfg)
    source = getattr(data, "source_shape", None)
    method = build_method(cfg, data.shape, CPU, data.num_classes, 1, source, data)
    state = build_state(cfg, data.shape, CPU, data.num_classes, method)
    return cfg, data, method, state


@pytest.mark.parametrize("name", options("method"))
def test_method_builds_named_players(name):
    """Players are named, each a Player whose optimizer holds exactly its network's parameters;
    the method is the state's "method" component."""
    cfg, data, method, state = built(name)
    assert isinstance(state, TrainState) and state.components["method"] is method
    assert len(state.players) >= 2
    for pname, player in state.players.items():
        assert isinstance(player, Player), pname
        owned = {id(p) for p in player.net.parameters()}
        in_opt = {id(p) for g in player.opt.param_groups for p in g["params"]}
        assert owned == in_opt and len(owned) > 0, pname
    # something samples (translation methods translate with their networks in eval mode)
    samples = any(p.ema is not None for p in state.players.values())
    assert samples or isinstance(method, Translating)


@pytest.mark.parametrize("name", options("method"))
def test_method_step_moves_every_player_and_logs(name):
    """One step draws batches_per_step batches, moves every player's weights and returns
    finite scalar logs including loss/d and loss/g."""
    cfg, data, method, state = built(name)
    before = {n: [q.detach().clone() for q in p.net.parameters()] for n, p in state.players.items()}
    drawn = []

    def batches():
        for batch in data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU):
            drawn.append(1)
            yield batch

    logs = method.step(state, batches(), 0)
    assert len(drawn) == method.batches_per_step
    assert {"loss/d", "loss/g"} <= set(logs)
    for key, value in logs.items():
        assert value.dim() == 0 and torch.isfinite(value), key
    for pname, player in state.players.items():
        moved = max(
            (q - b).abs().max().item() for q, b in zip(player.net.parameters(), before[pname])
        )
        assert 0.0 < moved < 1.0, pname


@pytest.mark.parametrize("name", options("method"))
def test_method_samples_fixed_inputs_reproducibly(name):
    """sample_inputs(n, seed) is a pure function of (n, seed) and leaves the global RNG alone;
    sample() gives n images of the data's shape in [-1, 1]."""
    cfg, data, method, state = built(name)
    rng = torch.get_rng_state()
    a, b = method.sample_inputs(5, 3), method.sample_inputs(5, 3)
    assert torch.equal(torch.get_rng_state(), rng)
    images = method.sample(state, a)
    if isinstance(method, Translating):  # one tiled grid of input / output / ... rows
        assert images.shape[:2] == (1, data.shape[0]) and images.dtype == torch.float32
    else:
        assert tuple(images.shape) == (5, *data.shape) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    torch.testing.assert_close(method.sample(state, b), images, rtol=0, atol=0)
    assert not torch.equal(method.sample(state, method.sample_inputs(5, 4)), images)


@pytest.mark.parametrize("name", options("method"))
def test_method_state_round_trips(name):
    """The method's own state_dict loads back into a fresh method and gives the same dict."""
    _, _, method, _ = built(name)
    _, _, fresh, _ = built(name)
    saved = method.state_dict()
    assert isinstance(saved, dict)
    fresh.load_state_dict(saved)
    assert_bit_equal(fresh.state_dict(), saved)  # tensors (image pools) compared bit for bit


def test_gan_data_per_step_counts_critic_steps_accumulation_and_processes():
    """method=gan with n_critic=3, accumulate=2, batch 8 on 2 processes: 6 batches per step,
    G trains on 8 x 2 x 2 = 32 images per step and D sees 3 x 32 = 96 reals."""
    cfg = compose_cfg("trainer.n_critic=3", "trainer.accumulate=2")
    from ganrun.training.methods.gan import GANMethod

    method = GANMethod(RunSpec(cfg, (1, 16, 16), None, CPU, world_size=2))
    assert (method.batches_per_step, method.images_per_step, method.reals_per_step) == (6, 32, 96)

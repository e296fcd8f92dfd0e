"""method=stargan: G(x, c) and the two-headed D, the class and reconstruction terms by hand."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_DATA, needs_mnist
from test_methods import built

from ganrun.errors import GanrunError
from ganrun.models.stargan import StarDiscriminator, StarGenerator, domain_maps, halvings_to

CPU = torch.device("cpu")
COLORED = ["dataset=colored_mnist", f"dataset.root='{SHARED_DATA}'", "dataset.test_size=40"]


@pytest.mark.parametrize("resolution", [16, 28, 32, 128, 256])
def test_networks_fit_every_size(resolution):
    """G keeps the size; D gives a logit map and (B, domains) class logits; the paper's D
    halves 6 times at 128 px (2x2 map)."""
    G = StarGenerator((3, resolution, resolution), num_domains=5, width=2, blocks=1)
    x = torch.randn(2, 3, resolution, resolution)
    assert tuple(G(x, torch.tensor([0, 4])).shape) == (2, 3, resolution, resolution)
    D = StarDiscriminator((3, resolution, resolution), num_domains=5, width=2)
    assert D(x).dim() == 3 and D(x).shape[0] == 2
    assert tuple(D.classify(x).shape) == (2, 5)
    size = {16: 2, 28: 3, 32: 2, 128: 2, 256: 2}[resolution]  # the last map: >= 2x2
    assert tuple(D(x).shape) == (2, size, size) and halvings_to(128) == 6


def test_domain_maps_are_one_hot_planes():
    maps = domain_maps(torch.tensor([2, 0]), 3, torch.zeros(2, 1, 2, 2))
    expected = torch.zeros(2, 3, 2, 2)
    expected[0, 2], expected[1, 0] = 1.0, 1.0
    torch.testing.assert_close(maps, expected, rtol=0, atol=0)


def test_generator_depends_on_the_target_domain():
    """The domain reaches the output by a real margin, not float noise: with the planes
    reflection-padded like the image, instance norm cancelled them and the outputs for two
    domains differed by < 1e-6. Each image's output depends on its own domain only."""
    torch.manual_seed(0)
    G = StarGenerator((1, 16, 16), num_domains=3, width=4, blocks=1)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        same, other, mixed = (G(x, torch.tensor(d)) for d in ([0, 0], [1, 1], [0, 1]))
    assert 0.02 < (same - other).abs().mean() < 1.0
    torch.testing.assert_close(mixed[0], same[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[1], other[1], rtol=0, atol=1e-6)


def test_step_terms_by_hand():
    """Digits' classes as domains: the step's targets are the labels permuted by the global
    RNG; with the same draw, rec = mean |G(G(x, c'), c) - x| with G before the step, cls/d =
    CE(D_cls(x), c) with D before its update, loss/g = g_gan + cls/g + 10 rec."""
    cfg, data, method, state = built("stargan")
    G, D = copy.deepcopy(state.players["G"].net), copy.deepcopy(state.players["D"].net)
    x, c = next(data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU))
    torch.manual_seed(3)
    logs = method.step(state, data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU), 0)
    torch.manual_seed(3)
    target = c[torch.randperm(len(c))]
    with torch.no_grad():
        rec = (G(G(x, target), c) - x).abs().mean()
        cls_d = F.cross_entropy(D.classify(x), c)
    torch.testing.assert_close(logs["rec"], rec)
    torch.testing.assert_close(logs["cls/d"], cls_d)
    torch.testing.assert_close(logs["loss/g"], logs["loss/g_gan"] + logs["cls/g"] + 10 * rec)


def test_wgan_gp_as_in_the_paper_steps_n_critic_times():
    cfg, data, method, state = built("stargan", "loss=wgan_gp", "trainer.n_critic=3")
    assert method.batches_per_step == 3
    logs = method.step(state, data.batches(8, 0, 0, CPU), 0)
    assert {"gp", "cls/d", "cls/g", "rec"} <= set(logs)
    assert all(torch.isfinite(v) for v in logs.values())


@needs_mnist
def test_colored_mnist_grid_shows_every_domain():
    """4 colours: the grid has the input row and one row per domain (5 rows of 28 px + 2)."""
    _, data, method, state = built("stargan", *COLORED)
    assert data.num_classes == 4
    image = method.sample(state, method.sample_inputs(3, 0))
    assert tuple(image.shape) == (1, 3, 5 * 30 + 2, 3 * 30 + 2)
    out = method.translator(state)(method.sample_inputs(3, 0)["a"], torch.tensor([0, 1, 2]))
    assert tuple(out.shape) == (3, 3, 28, 28)


def test_refusals():
    with pytest.raises(GanrunError, match="domain-labelled"):
        built("stargan", "dataset=edges", "dataset@dataset.source=digits")
    _, _, method, state = built("stargan")
    with pytest.raises(GanrunError, match="domain="):
        method.translator(state)(torch.zeros(1, 1, 16, 16))


def test_resume_is_bit_exact(tmp_path):
    """2 steps + 2 resumed = 4 steps bit for bit: the target-domain draws come from the global
    RNG, which the checkpoint restores."""
    from test_methods import TINY_TRANSLATOR
    from test_train import TENSOR_KEYS, assert_bit_equal, run_and_resume

    a, b, rows_a, rows_b = run_and_resume(
        tmp_path, "method=stargan", *TINY_TRANSLATOR, "method.generator.blocks=1"
    )
    for key in TENSOR_KEYS:
        assert_bit_equal(a[key], b[key], key)
    assert [r["loss/g"] for r in rows_a[2:]] == [r["loss/g"] for r in rows_b]


@needs_mnist
def test_colored_mnist_preset_is_the_papers_objective_and_steps():
    """experiment=stargan_colored_mnist: the paper's WGAN-GP (gp 10), n_critic 5, lambda_cls 1,
    lambda_rec 10, Adam 1e-4 (0.5, 0.999), batch 16; our widths; no FID; one step moves G and D."""
    from conftest import compose_cfg

    from ganrun.build import build_data, build_method, build_state

    cfg = compose_cfg(
        "experiment=stargan_colored_mnist", *COLORED[1:], "dataset.split=test", smoke=False
    )
    assert cfg.loss._target_.endswith("WassersteinLoss") and cfg.loss.penalties.gp.weight == 10
    assert (cfg.method.lambda_cls, cfg.method.lambda_rec) == (1.0, 10.0)
    assert (cfg.trainer.n_critic, cfg.trainer.batch_size) == (5, 16)
    assert cfg.optimizer.g.lr == cfg.optimizer.d.lr == 1e-4
    assert list(cfg.optimizer.g.betas) == [0.5, 0.999]
    assert (cfg.method.generator.width, cfg.method.generator.blocks) == (16, 3)
    assert set(cfg.metrics) == {"features"}  # translation metrics only during training
    data = build_data(cfg)
    method = build_method(cfg, data.shape, CPU, data.num_classes, 1, data.source_shape, data)
    state = build_state(cfg, data.shape, CPU, data.num_classes, method)
    before = {k: copy.deepcopy(p.net.state_dict()) for k, p in state.players.items()}
    logs = method.step(state, data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU), 0)
    assert all(torch.isfinite(v) for v in logs.values()) and 0.0 < logs["rec"] < 2.0
    for name, player in state.players.items():
        moved = max((player.net.state_dict()[k] - v).abs().max() for k, v in before[name].items())
        assert 0.0 < moved < 0.1, name

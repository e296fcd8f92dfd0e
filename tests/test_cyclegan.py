"""method=cyclegan: ResNet translator shapes, cycle and identity terms by hand, the pools in
the checkpoint, bit-exact resume of 4 networks, their optimizers and the pools."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import compose_cfg
from test_methods import EDGES, built
from test_train import TENSOR_KEYS, assert_bit_equal, run_and_resume

from ganrun.build import build_data, build_method, build_schedules, build_state
from ganrun.errors import GanrunError
from ganrun.models.resnet_translator import ResNetTranslator
from ganrun.training.ema import EmaRate
from ganrun.training.methods.cyclegan import cycle_losses, weighted_cycle
from ganrun.training.schedules import Progress, ScheduledRun

CPU = torch.device("cpu")
TINY = [*EDGES, "method.generator.width=4", "method.discriminator.width=4"]
TINY += ["method.generator.blocks=1"]


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
def test_resnet_translator_keeps_the_image_size(resolution):
    """grey -> RGB at every size from 16 to 256 px; the output is tanh's range."""
    G = ResNetTranslator((3, resolution, resolution), in_channels=1, width=2, blocks=1)
    y = G(torch.randn(2, 1, resolution, resolution))
    assert tuple(y.shape) == (2, 3, resolution, resolution)
    assert -1.0 <= y.min().item() and y.max().item() <= 1.0


def test_resnet_translator_blocks_padding_and_norm():
    """9 residual blocks, reflection padding only (no zero-padded 3x3/7x7 conv), instance norm;
    the reference's 9-block 256 px G has 11,378,179 parameters."""
    G = ResNetTranslator((3, 256, 256), blocks=9)
    assert sum(p.numel() for p in G.parameters()) == 11_378_179
    convs = [m for m in G.modules() if type(m) is torch.nn.Conv2d and m.kernel_size[0] != 3]
    assert all(m.padding == (0, 0) for m in convs)
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in G.modules()) == 2 + 2 * 9
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in G.modules()) == 1 + 2 + 18 + 2


def test_resnet_translator_rejects_sizes_it_cannot_restore():
    with pytest.raises(GanrunError, match="generator.downsampling=3"):
        ResNetTranslator((1, 20, 20), downsampling=3)


def test_cycle_and_identity_terms_by_hand():
    """a = 0, rec_a = 0.5 -> cycle/a 0.5; b = 1, rec_b = -1 -> 2; identity 0.25 and 0.1;
    total with lambda 10 and identity 0.5: 10 (0.5 + 2) + 0.5 x 10 (0.25 + 0.1) = 26.75."""
    a, b = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    terms = cycle_losses(a, b, a + 0.5, b - 2.0, a + 0.25, b - 0.1)
    expected = {"cycle/a": 0.5, "cycle/b": 2.0, "identity/a": 0.25, "identity/b": 0.1}
    torch.testing.assert_close({k: v.item() for k, v in terms.items()}, expected)
    torch.testing.assert_close(weighted_cycle(terms, 10.0, 0.5).item(), 26.75)
    no_identity = cycle_losses(a, b, a + 0.5, b - 2.0, None, None)
    torch.testing.assert_close(weighted_cycle(no_identity, 10.0, 0.5).item(), 25.0)


def test_step_logs_the_cycle_and_identity_of_the_networks_it_trained():
    """The logged cycle/identity terms are those of the generators before the step, recomputed
    here by hand, and loss/g is the adversarial terms + 10 x cycles + 5 x identities."""
    cfg, data, method, state = built("cyclegan")
    G_AB = copy.deepcopy(state.players["G_AB"].net)
    G_BA = copy.deepcopy(state.players["G_BA"].net)
    batches = data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU)
    a, b = next(data.batches(cfg.trainer.batch_size, cfg.seed, 0, CPU))
    logs = method.step(state, batches, 0)
    with torch.no_grad():
        by_hand = {
            "cycle/a": (G_BA(G_AB(a)) - a).abs().mean(),
            "cycle/b": (G_AB(G_BA(b)) - b).abs().mean(),
            "identity/a": (G_BA(a) - a).abs().mean(),
            "identity/b": (G_AB(b) - b).abs().mean(),
        }
    torch.testing.assert_close({k: logs[k] for k in by_hand}, by_hand)
    total = logs["loss/g_a"] + logs["loss/g_b"] + 10 * (by_hand["cycle/a"] + by_hand["cycle/b"])
    total = total + 5 * (by_hand["identity/a"] + by_hand["identity/b"])
    torch.testing.assert_close(logs["loss/g"], total)
    # the pools took the first batch of fakes: 8 each (pool of 50 still filling)
    assert method.pools["A"].count == method.pools["B"].count == cfg.trainer.batch_size


def test_any_zoo_loss_and_penalty_steps():
    """loss=wgan_gp: both Ds carry the gradient penalty (gp_a, gp_b)."""
    _, data, method, state = built("cyclegan", "loss=wgan_gp")
    logs = method.step(state, data.batches(8, 0, 0, CPU), 0)
    assert {"gp_a", "gp_b"} <= set(logs) and all(torch.isfinite(v) for v in logs.values())


def test_refusals_name_the_key():
    with pytest.raises(GanrunError, match="trainer.n_critic=2"):
        built("cyclegan", "trainer.n_critic=2")
    with pytest.raises(GanrunError, match="method.lambda_identity=0.5"):  # 1 -> 3 channels
        cfg = compose_cfg("method=cyclegan", "dataset=edges", "dataset@dataset.source=digits")
        from ganrun.training.methods.base import RunSpec
        from ganrun.training.methods.cyclegan import CycleGANMethod

        m = cfg.method
        CycleGANMethod(
            RunSpec(cfg, (3, 16, 16), None, CPU, 1, (1, 16, 16)), m.generator, m.discriminator
        )


def test_linear_decay_schedules_all_four_players():
    """schedule=linear_decay's G and D entries reach G_AB, G_BA and D_A, D_B: at 3/4 of a
    100-step run (hold = half) every lr is half the configured 2e-4."""
    cfg = compose_cfg("method=cyclegan", *TINY, "schedule=linear_decay", "trainer.max_steps=100")
    data = build_data(cfg)
    method = build_method(cfg, data.shape, CPU, None, 1, data.source_shape, data)
    state = build_state(cfg, data.shape, CPU, None, method)
    schedules = build_schedules(cfg)
    schedules.bind(ScheduledRun(state, method, EmaRate()))
    schedules.apply(Progress(75, 75 * 8, 100, 800))
    lrs = {name: p.opt.param_groups[0]["lr"] for name, p in state.players.items()}
    torch.testing.assert_close(lrs, dict.fromkeys(("G_AB", "G_BA", "D_A", "D_B"), 1e-4))


def test_resume_is_bit_exact_with_the_pools(tmp_path):
    """2 steps + 2 resumed = 4 steps, bit for bit: 4 networks, their optimizers, the pools
    (contents and random streams), the RNG; the same losses in metrics.jsonl."""
    a, b, rows_a, rows_b = run_and_resume(tmp_path, "method=cyclegan", *TINY, "method.pool_size=10")
    for key in (*TENSOR_KEYS, "method"):
        assert_bit_equal(a[key], b[key], key)
    assert set(a["players"]) == {"G_AB", "G_BA", "D_A", "D_B"}
    assert a["method"]["pool_A"]["images"].shape[0] == 10  # full, so swaps happened
    assert [r["loss/g"] for r in rows_a[2:]] == [r["loss/g"] for r in rows_b]
    assert [r["loss/d"] for r in rows_a[2:]] == [r["loss/d"] for r in rows_b]


def test_horse_deer_preset_keeps_the_papers_objective_at_our_width():
    """experiment=cyclegan_horse_deer: LSGAN, linear decay, lambda_cycle 10, identity 0.5, pool
    50, 6-block ResNet G with instance norm; ours: G width 8, D 16, batch 4; FID in the digit
    classifier's features (no Inception offline)."""
    from conftest import compose_cfg

    cfg = compose_cfg("experiment=cyclegan_horse_deer", "dataset.root=data", smoke=False)
    assert cfg.method._target_.endswith("CycleGANMethod") and cfg.loss._target_.endswith(
        "LeastSquaresLoss"
    )
    assert (cfg.method.lambda_cycle, cfg.method.lambda_identity, cfg.method.pool_size) == (
        10.0,
        0.5,
        50,
    )
    G = cfg.method.generator
    assert (G.width, G.blocks, G.downsampling, G.norm) == (8, 6, 2, "instance")
    assert cfg.method.discriminator.width == 16 and cfg.trainer.batch_size == 4
    assert (cfg.dataset.a, cfg.dataset.b) == ("horse", "deer")
    assert cfg.metrics.features._target_.endswith("DigitFeatures") and "fid" in cfg.metrics
    assert cfg.trainer.eval_every == cfg.trainer.ckpt_every == 500
    shape = cfg.schedule.lr_g.shape  # lr held for half the run, then linearly to 0
    assert shape._target_.endswith("LinearDecay") and shape.hold is None and shape.final == 0.0

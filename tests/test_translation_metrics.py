"""Translation metrics on known images (PSNR of a known noise level, SSIM by hand, L1), the
baselines beside them, content accuracy, the in-training hook and `ganrun eval ckpt=`."""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import SHARED_DATA, compose_cfg, needs_mnist
from rich.console import Console
from torch import nn
from torch.testing import assert_close

from ganrun.data.base import from_uint8
from ganrun.data.colored_mnist import ColoredMNIST, colorize, digit_ink
from ganrun.data.translation import PairedTensors
from ganrun.evaluation.during_training import make_evaluator
from ganrun.evaluation.translation import (
    PSNR_CAP,
    TranslationEvaluator,
    l1,
    psnr,
    psnr_per_image,
    ssim,
    ssim_per_image,
)

C1, C2 = 0.01**2, 0.03**2  # SSIM's constants at data_range 1


def on_unit(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] images as the [-1, 1] tensors the metrics take."""
    return x01 * 2.0 - 1.0


# ------------------------------------------------------------------ PSNR, SSIM, L1 by hand


def test_psnr_of_two_valued_noise_is_exact():
    d = 0.05  # every pixel off by exactly +-d on [0, 1]: MSE = d^2
    target = torch.full((4, 3, 8, 8), 0.5)
    sign = torch.where(torch.arange(4 * 3 * 64).view(4, 3, 8, 8) % 2 == 0, 1.0, -1.0)
    value = psnr(on_unit(target + d * sign), on_unit(target))
    assert_close(value, 10 * math.log10(1 / d**2), rtol=1e-5, atol=1e-5)  # 26.02 dB


def test_psnr_of_uniform_noise_matches_d_squared_over_three():
    d = 0.1  # noise uniform on [-d, d]: MSE = d^2 / 3, PSNR = 10 log10(3 / d^2) = 24.77 dB
    gen = torch.Generator().manual_seed(0)
    target = torch.full((16, 3, 32, 32), 0.5)
    noise = (torch.rand(target.shape, generator=gen) * 2 - 1) * d
    expected = 10 * math.log10(3 / d**2)
    assert_close(psnr(on_unit(target + noise), on_unit(target)), expected, rtol=0, atol=0.03)
    # evenly spaced noise, exactly: mean of squares of linspace(-d, d, M) = d^2 (M+1) / (3 (M-1))
    m = 3 * 32 * 32
    grid = torch.linspace(-d, d, m).view(1, 3, 32, 32)
    exact = 10 * math.log10(3 * (m - 1) / (d**2 * (m + 1)))
    assert_close(
        psnr(on_unit(0.5 + grid), on_unit(torch.full_like(grid, 0.5))), exact, rtol=1e-4, atol=1e-4
    )


def test_psnr_caps_exact_images_and_clamps_predictions():
    x = on_unit(torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    assert psnr_per_image(x, x).tolist() == [PSNR_CAP] * 3
    # a prediction beyond [-1, 1] is clamped first, as a saved PNG would be
    assert psnr(torch.full((1, 1, 4, 4), 3.0), torch.ones(1, 1, 4, 4)) == PSNR_CAP


def test_ssim_is_one_on_identical_images_and_below_otherwise():
    gen = torch.Generator().manual_seed(2)
    x = on_unit(torch.rand(4, 3, 16, 16, generator=gen))
    assert_close(ssim_per_image(x, x), torch.ones(4))
    noisy = (x + 0.2 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    values = ssim_per_image(noisy, x)
    assert ((values > 0.0) & (values < 0.99)).all()


def test_ssim_of_flat_images_by_hand():
    # flat images: no variance, so SSIM is the luminance term (2 mx my + C1) / (mx^2 + my^2 + C1)
    mx, my = 0.3, 0.6
    x = torch.full((1, 1, 16, 16), mx)
    y = torch.full((1, 1, 16, 16), my)
    expected = (2 * mx * my + C1) / (mx**2 + my**2 + C1)
    # float32 SSIM: within 3e-4 of the exact value (variances of flat images cancel worst)
    assert_close(ssim(on_unit(x), on_unit(y)), expected, rtol=0, atol=5e-4)


def test_ssim_works_below_the_window_size():
    x = on_unit(torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(3)))
    assert_close(ssim_per_image(x, x), torch.ones(2))


def test_l1_by_hand_and_shape_check():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[0.0, 0.5], [1.0, -1.0]]]])  # on [0, 1]: 0.5 vs 0.5, 0.75, 1, 0
    assert_close(l1(a, b), (0 + 0.25 + 0.5 + 0.5) / 4)
    with pytest.raises(ValueError, match="must be equal"):
        l1(a, torch.zeros(1, 3, 2, 2))


# ------------------------------------------------------------------ the evaluator


def offset_pairs(n: int = 6) -> PairedTensors:
    """b random; a = b + 10 grey levels (clipped at 255): an exact inverse exists."""
    gen = torch.Generator().manual_seed(4)
    b = torch.randint(0, 240, (n, 1, 8, 8), generator=gen, dtype=torch.uint8)
    a = (b.int() + 10).to(torch.uint8)
    return PairedTensors(a, b, baselines={"copy": lambda x: x})


def test_evaluator_reports_metrics_beside_the_baseline_by_hand():
    data = offset_pairs()
    evaluator = TranslationEvaluator(data)
    values = evaluator(lambda x, domain=None: x - 20 / 255)  # the exact inverse of the offset
    assert_close(values["psnr"], PSNR_CAP, rtol=0, atol=1e-6)
    assert_close(values["l1"], 0.0, rtol=0, atol=1e-6)
    assert_close(values["ssim"], 1.0, rtol=0, atol=1e-5)
    # the copy baseline is off by 10/255 everywhere: PSNR = 20 log10(25.5), L1 = 10/255
    assert_close(values["psnr_copy"], 20 * math.log10(25.5), rtol=1e-5, atol=1e-5)
    assert_close(values["l1_copy"], 10 / 255, rtol=1e-5, atol=1e-7)
    assert 0.0 < values["ssim_copy"] < 1.0
    assert sorted(values) == ["l1", "l1_copy", "psnr", "psnr_copy", "ssim", "ssim_copy"]


def test_evaluator_uses_the_first_n_test_images():
    data = offset_pairs(10)
    seen = []

    def translate(x, domain=None):
        seen.append(x.clone())
        return x

    TranslationEvaluator(data, n=4)(translate)
    assert_close(torch.cat(seen), from_uint8(data.test_set().a[:4]))


class Player(SimpleNamespace):
    pass


class StubMethod:
    """A translation method whose translator draws from the global RNG (a worst case)."""

    def __init__(self):
        self.calls = 0

    def translator(self, state):
        self.calls += 1

        def translate(a, domain=None):
            torch.rand(1)  # would shift the run's RNG stream if evaluation did not isolate it
            return state.players["G"].net(a)

        return translate


def test_in_training_hook_scores_the_translator_without_touching_the_rng():
    data = offset_pairs()
    net = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.fill_(-20 / 255)
    state = SimpleNamespace(players={"G": Player(net=net)})
    method = StubMethod()
    evaluate = make_evaluator(data, method, n=6, seed=0)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    values = evaluate(state)
    assert_close(torch.rand(3), expected_next)  # the global stream is where it was
    assert method.calls == 1
    assert_close(values["psnr"], PSNR_CAP, rtol=0, atol=1e-4)
    assert_close(values["psnr_copy"], 20 * math.log10(25.5), rtol=1e-5, atol=1e-5)


@needs_mnist
def test_colored_mnist_content_accuracy():
    data = ColoredMNIST(
        {"red": [200, 30, 30], "green": [30, 150, 50], "blue": [30, 60, 200]},
        root=str(SHARED_DATA),
        split="test",
        test_size=200,
    )
    evaluator = TranslationEvaluator(data)

    def oracle(a, domain):  # repaint the background to the asked colour, keep the digit
        ink = ((digit_ink(a) + 1) * 127.5).round().to(torch.uint8)
        return from_uint8(colorize(ink, data.palette, domain))

    values = evaluator(oracle)
    assert values["colour_acc"] == 1.0
    assert values["colour_acc_copy"] == 0.0  # every asked colour differs from the source's
    assert values["colour_acc_target"] == 1.0
    assert values["digit_acc"] >= 0.95 and values["digit_acc_target"] >= 0.95
    assert_close(values["digit_acc"], values["digit_acc_target"], rtol=0, atol=0.02)
    assert values["psnr"] > 40.0 > values["psnr_copy"]


# ------------------------------------------------------------------ ganrun eval ckpt=


def test_eval_checkpoint_of_a_pix2pix_run(tmp_path):
    from ganrun.evaluation.command import evaluate
    from ganrun.training.train import train

    overrides = [
        "method=pix2pix",
        "dataset=superres",
        "dataset@dataset.source=digits",
        "dataset.test_size=64",
        "trainer.max_steps=2",
        "trainer.eval_every=2",
        "trainer.eval_samples=64",
        "metrics=[]",
        "method.generator.width=4",
        "method.discriminator.width=4",
    ]
    quiet = Console(file=io.StringIO(), width=120)
    train(
        compose_cfg(*overrides),
        tmp_path / "run",
        overrides=["debug=smoke", *overrides],
        console=quiet,
    )
    logged = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    in_training = {k[5:]: v for k, v in logged[-1].items() if k.startswith("eval/")}
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    result = evaluate(
        compose_cfg(f"ckpt={ckpt}", "n=64", "metrics=[]", task="eval", smoke=False), quiet
    )
    written = json.loads(ckpt.with_name("last.eval.json").read_text())
    assert written["metrics"] == result["metrics"]
    assert written["baselines"] == ["bicubic"]
    for key in ("psnr", "ssim", "l1", "psnr_bicubic", "ssim_bicubic", "l1_bicubic"):
        assert_close(result["metrics"][key], in_training[key], rtol=1e-6, atol=1e-6)

"""Checkpoints written by ganrun before methods and players (format ganrun.checkpoint/1,
tests/data/checkpoint_v1: see its README) still sample, evaluate and resume, with the numbers
the old code gave."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console
from test_train import assert_bit_equal, load, metrics, resume

from ganrun.training.checkpoint import FORMAT, load_checkpoint
from ganrun.training.checkpoint_v1 import renamed_targets, upgrade_v1

V1 = Path(__file__).parent / "data" / "checkpoint_v1"
EXPECTED = json.loads((V1 / "expected.json").read_text())


@pytest.fixture
def v1_run(tmp_path) -> Path:
    """A copy of the v1 run folder (checkpoints/ and metrics.jsonl), to resume into."""
    run = tmp_path / "v1"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("step_0000002.pt", "last.pt"):
        shutil.copy(V1 / name, run / "checkpoints" / name)
    shutil.copy(V1 / "metrics.jsonl", run / "metrics.jsonl")
    return run


def test_v1_fixture_is_in_the_old_format():
    raw = load(V1 / "last.pt")
    assert raw["format"] == "ganrun.checkpoint/1" and {"G", "D", "G_ema", "opt_g"} <= set(raw)


def test_v1_is_upgraded_on_load():
    """Players G (net, opt, scaler, ema) and D; method gan, no schedules; the same tensors."""
    raw = load(V1 / "last.pt")
    ckpt = load_checkpoint(V1 / "last.pt")
    assert ckpt["format"] == FORMAT and ckpt["upgraded_from"] == "ganrun.checkpoint/1"
    assert set(ckpt["players"]) == {"G", "D"}
    assert_bit_equal(ckpt["players"]["G"]["ema"], raw["G_ema"])
    assert_bit_equal(ckpt["players"]["D"]["opt"], raw["opt_d"])
    assert ckpt["config"]["method"]["_target_"] == "ganrun.training.methods.gan.GANMethod"
    assert ckpt["config"]["schedule"] == {} and ckpt["schedules"] == {}
    assert (ckpt["step"], ckpt["best"]) == (4, None)


def test_moved_class_paths_are_renamed():
    """_target_ values of modules that moved point at their new homes; others stay."""
    old = {
        "augment": {"_target_": "ganrun.augment.DiffAugment", "policy": ["color"]},
        "logger": {"_target_": "ganrun.wandb_backend.WandbBackend"},
        "metrics": {
            "fid": {"_target_": "ganrun.metrics.scores.FID"},
            "features": {"_target_": "ganrun.metrics.features.DigitFeatures"},
        },
        "loss": {"_target_": "ganrun.losses.ns.NonSaturatingLoss", "penalties": {}},
        "list": [{"_target_": "ganrun.metrics.inception.InceptionFeatures"}],
    }
    new = renamed_targets(old)
    assert new["augment"] == {
        "_target_": "ganrun.augment.diffaugment.DiffAugment",
        "policy": ["color"],
    }
    assert new["logger"]["_target_"] == "ganrun.tracking.wandb_backend.WandbBackend"
    assert new["metrics"]["fid"]["_target_"] == "ganrun.evaluation.metrics.scores.FID"
    assert (
        new["metrics"]["features"]["_target_"]
        == "ganrun.evaluation.features.extractor.DigitFeatures"
    )
    assert new["loss"] == old["loss"]
    assert new["list"][0]["_target_"] == "ganrun.evaluation.features.inception.InceptionFeatures"
    from hydra.utils import get_class

    for target in (new["augment"], new["logger"], new["metrics"]["fid"], new["list"][0]):
        get_class(target["_target_"])  # every renamed path imports


def test_upgrade_keeps_an_existing_method():
    raw = load(V1 / "last.pt")
    raw["config"]["method"] = {"_target_": "x.Y"}
    assert upgrade_v1(raw, FORMAT)["config"]["method"] == {"_target_": "x.Y"}


def test_v1_samples_the_same_bytes(tmp_path):
    """`ganrun sample ckpt=<v1 last.pt> n=16 seed=3` writes the samples.npz the old code wrote."""
    from conftest import compose_cfg

    from ganrun.sampling.command import sample

    overrides = [f"ckpt={V1 / 'last.pt'}", "n=16", "seed=3", f"out={tmp_path / 's'}"]
    out = sample(compose_cfg(*overrides, task="sample", smoke=False), Console(quiet=True))
    digest = hashlib.sha256((out / "samples.npz").read_bytes()).hexdigest()
    assert digest == EXPECTED["sample_n16_seed3_npz_sha256"]


def test_v1_evaluates_to_the_old_values(digit_cache, tmp_path):
    """`ganrun eval ckpt=<v1 last.pt> n=200 metrics=[fid,kid]` with the random-weight digit
    classifier (seed 0) gives the FID and KID the old code gave."""
    from test_eval import run_eval

    result = run_eval(
        f"ckpt={V1 / 'last.pt'}", "n=200", "metrics=[fid,kid]", f"out={tmp_path / 'e.json'}"
    )
    want = EXPECTED["eval_n200_fid_kid_random_digit_classifier_seed0"]
    torch.testing.assert_close(result["metrics"]["fid"], want["fid"], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(result["metrics"]["kid"], want["kid"], rtol=1e-9, atol=1e-12)


def test_v1_resumes_bit_exact(v1_run):
    """Resuming the v1 step-2 checkpoint in its folder retrains steps 3 and 4 exactly as the
    old code did: the same losses in metrics.jsonl and the v1 last.pt's tensors, bit for bit;
    the new last.pt is in today's format."""
    old_last = load_checkpoint(v1_run / "checkpoints" / "last.pt")
    old_rows = metrics(v1_run)
    resume(v1_run, v1_run / "checkpoints" / "step_0000002.pt")
    new_last = load(v1_run / "checkpoints" / "last.pt")
    assert new_last["format"] == FORMAT and new_last["step"] == 4
    assert_bit_equal(new_last["players"], old_last["players"], "players")
    assert_bit_equal(new_last["rng"], old_last["rng"], "rng")
    rows = metrics(v1_run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for old, new in zip(old_rows, rows):
        for key in ("d/real", "d/fake", "loss/d", "loss/g"):
            assert old[key] == new[key], (old["step"], key)

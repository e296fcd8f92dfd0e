"""`ganrun eval`: a checkpoint from `ganrun train`, two image folders, eval.json, clean refusals.

The digit extractor runs on a random-weight classifier written to a temporary $GANRUN_CACHE
(conftest.write_digit_classifier), so these tests need neither the trained classifier nor
the Inception weights.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_cfg, write_digit_classifier
from PIL import Image
from rich.console import Console
from test_cli import launch as launch_ganrun

from ganrun.data.digits import Digits
from ganrun.errors import GanrunError
from ganrun.evaluation.command import evaluate
from ganrun.sampling.command import sample
from ganrun.training.train import train

N = 200  # > 128 feature dims, so FID's covariances have full rank


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def run_eval(*overrides: str) -> dict:
    return evaluate(compose_cfg(*overrides, task="eval", smoke=False), console=quiet())


def write_pngs(folder: Path, images: np.ndarray) -> Path:
    """uint8 (n, C, H, W) -> one PNG per image."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        array = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        Image.fromarray(array).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """$GANRUN_CACHE with a random digit classifier, a 2-step digits run, a ring8 run, folders."""
    tmp = tmp_path_factory.mktemp("eval")
    cache = tmp / "cache"
    write_digit_classifier(cache)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANRUN_CACHE", str(cache))
        for name, extra in (("run", []), ("ring", ["dataset=ring8", "model=mlp"])):
            overrides = ["trainer.max_steps=2", *extra]
            train(compose_cfg(*overrides), tmp / name, overrides=overrides, console=quiet())
        digits = Digits(16).real_images(400).numpy()
        write_pngs(tmp / "real", digits[:N])
        write_pngs(tmp / "same", digits[:N])
        write_pngs(tmp / "other", digits[N:])
        write_pngs(tmp / "inverted", 255 - digits[:N])
        write_pngs(tmp / "rgb", np.repeat(digits[:N], 3, axis=1))
        (tmp / "empty").mkdir()
        yield tmp


@pytest.fixture(scope="module")
def ckpt_result(env) -> dict:
    return run_eval(f"ckpt={env / 'run' / 'checkpoints' / 'last.pt'}", f"n={N}")


def test_checkpoint_eval_writes_json_beside_it(env, ckpt_result):
    """ckpt=<last.pt> n=200: FID in the digit space of the run's dataset, in last.eval.json."""
    written = json.loads((env / "run" / "checkpoints" / "last.eval.json").read_text())
    assert written == ckpt_result
    assert written["features"] == "digit-classifier" and written["feature_dims"] == 128
    assert (written["n_fake"], written["n_real"], written["step"]) == (N, N, 2)
    assert written["real"] == "digits-1x16x16"
    assert written["ckpt"] == str(env / "run" / "checkpoints" / "last.pt")
    assert list(written["metrics"]) == ["fid"]
    assert 0.0 < written["metrics"]["fid"] < 1e4 and math.isfinite(written["metrics"]["fid"])


def test_checkpoint_and_its_samples_give_one_fid(env, ckpt_result):
    """`ganrun sample` then eval fake=samples.npz equals eval ckpt= (same seed, same n)."""
    ckpt = env / "run" / "checkpoints" / "last.pt"
    out = sample(
        compose_cfg(f"ckpt={ckpt}", f"n={N}", f"out={env / 's'}", task="sample", smoke=False),
        quiet(),
    )
    result = run_eval(f"fake={out / 'samples.npz'}", "dataset=digits")
    assert result["features"] == "digit-classifier" and result["n_real"] == N
    assert result["metrics"]["fid"] == pytest.approx(ckpt_result["metrics"]["fid"], rel=1e-9)
    assert not (out / "samples.eval.json").exists()  # fake= writes only with out=


def test_all_four_metrics(env, tmp_path):
    out = tmp_path / "e.json"
    result = run_eval(
        f"ckpt={env / 'run'}",  # a run folder means its last.pt
        f"n={N}",
        "metrics=[fid,kid,is,pr]",
        "metrics.kid.subsets=5",
        "metrics.kid.subset_size=50",
        f"out={out}",
    )
    values = result["metrics"]
    assert set(values) == {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall"}
    assert 1.0 <= values["is"] <= 10.0  # 10 digit classes
    assert 0.0 <= values["precision"] <= 1.0 and 0.0 <= values["recall"] <= 1.0
    assert values["kid_std"] >= 0.0
    assert json.loads(out.read_text())["metrics"] == values


def test_identical_folders_score_zero(env):
    """Two folders of the same 200 images: FID 0, KID ~0, precision = recall = 1."""
    result = run_eval(
        f"real={env / 'real'}",
        f"fake={env / 'same'}",
        "metrics/features=digit_classifier",
        "metrics=[fid,kid,pr]",
        "metrics.kid.subsets=3",
    )
    values = result["metrics"]
    assert values["fid"] == pytest.approx(0.0, abs=1e-6)
    # unbiased MMD^2 of a set with itself: the dropped diagonal leaves a small negative residue
    assert values["kid"] == pytest.approx(0.0, abs=1e-4)
    assert values["precision"] == 1.0 and values["recall"] == 1.0
    assert result["real"] == str(env / "real") and result["n_real"] == N


def test_different_folders_are_farther_apart(env):
    """Other digits are close, inverted digits far: FID orders them."""
    fid = {
        name: run_eval(
            f"real={env / 'real'}", f"fake={env / name}", "metrics/features=digit_classifier"
        )["metrics"]["fid"]
        for name in ("other", "inverted")
    }
    assert 0.0 < fid["other"] < fid["inverted"]


def test_toy_checkpoint_reports_mode_metrics(env):
    """ring8 has no image features: eval gives its mode metrics, no FID, no crash."""
    result = run_eval(f"ckpt={env / 'ring' / 'checkpoints' / 'last.pt'}", "n=300")
    assert set(result["metrics"]) == {"modes", "hq_pct", "reverse_kl"}
    assert result["features"] is None and result["n_real"] == 0
    assert 0.0 <= result["metrics"]["modes"] <= 8.0
    assert (env / "ring" / "checkpoints" / "last.eval.json").is_file()


def test_empty_metrics_gives_only_the_datasets_own(env):
    """metrics=[] leaves no `metrics` node: ring8 still gets its mode metrics, digits (which
    has none of its own) the clear refusal, never a raw ConfigAttributeError."""
    result = run_eval(f"ckpt={env / 'ring' / 'checkpoints' / 'last.pt'}", "n=300", "metrics=[]")
    assert set(result["metrics"]) == {"modes", "hq_pct", "reverse_kl"}
    with pytest.raises(GanrunError, match=r"nothing to evaluate: metrics=\[\]"):
        run_eval(f"ckpt={env / 'run'}", "n=64", "metrics=[]")


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["real={tmp}/empty", "fake={tmp}/same"], ["real=", "empty", "no images"]),
        (["real={tmp}/real", "fake={tmp}/rgb"], ["1 channel", "3 channels"]),
        (["ckpt={tmp}/run", "n=50"], ["fid: 50 samples for 128-d", "at least 129", "n="]),
        (["ckpt={tmp}/run", "fake={tmp}/same"], ["exactly one of ckpt= ", "fake="]),
        (["ckpt={tmp}/run", "metrics.fid.weights=x.pth"], ["add metrics/features=inception"]),
        ([], ["exactly one of ckpt="]),
        (["fake={tmp}/same"], ["needs real images", "real="]),
        (["real={tmp}/real", "fake={tmp}/nope"], ["fake=", "no such folder or file"]),
        (["real={tmp}/real", "dataset=digits", "fake={tmp}/same"], ["both name the real images"]),
        (
            ["ckpt={tmp}/run", "metrics=[is]", "metrics.is.splits=500", "n=200"],
            ["metrics.is.splits=500"],
        ),
        (  # folders default to Inception; its weights file as the issue names the key
            ["real={tmp}/real", "fake={tmp}/same", "metrics.fid.weights={tmp}/none.pth"],
            ["metrics.fid.weights={tmp}/none.pth", "no such file"],
        ),
        (  # the extractor's own key works as well (for metrics without fid)
            [
                "real={tmp}/real",
                "fake={tmp}/same",
                "metrics=[kid]",
                "metrics.features.weights={tmp}/other.pth",
                "metrics/features=inception",
            ],
            ["other.pth", "no such file"],
        ),
    ],
)
def test_refusals_name_the_problem(env, overrides, needles):
    with pytest.raises(GanrunError) as err:
        run_eval(*(o.format(tmp=env) for o in overrides))
    for needle in needles:
        assert needle.format(tmp=env) in str(err.value), (needle, str(err.value))


def test_mixed_sizes_in_one_folder(env, tmp_path):
    folder = write_pngs(tmp_path / "mixed", Digits(16).real_images(N).numpy())
    Image.new("L", (20, 20)).save(folder / "big.png")
    with pytest.raises(GanrunError, match="big.png is 20x20 with 1 channel but 0000.png is 16x16"):
        run_eval(f"real={env / 'real'}", f"fake={folder}", "metrics/features=digit_classifier")


def test_points_npz_is_refused(env, tmp_path):
    ring = env / "ring" / "checkpoints" / "last.pt"
    out = sample(
        compose_cfg(f"ckpt={ring}", "n=8", f"out={tmp_path}", task="sample", smoke=False), quiet()
    )
    with pytest.raises(GanrunError, match="2-D points have no image features"):
        run_eval(f"real={env / 'real'}", f"fake={out / 'samples.npz'}")


def test_fresh_cache_evaluates_with_the_packaged_classifier(env, tmp_path, monkeypatch):
    """No classifier in the cache (a fresh offline machine): `ganrun eval ckpt=...` works with
    the packaged weights and caches its reference statistics there."""
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "empty_cache"))
    result = run_eval(f"ckpt={env / 'run'}", f"n={N}", f"out={tmp_path / 'e.json'}")
    assert result["features"] == "digit-classifier" and result["metrics"]["fid"] > 0
    assert list((tmp_path / "empty_cache" / "refstats").glob("*.npz"))


# ---------------------------------------------------------------------------- the command


def launch(cwd: Path, cache: Path, *args: str) -> subprocess.Popen:
    return launch_ganrun(cwd, "eval", *args, env={"GANRUN_CACHE": str(cache)})


@pytest.fixture(scope="module")
def cli(env):
    """The `ganrun eval` calls of this module, run concurrently: {name: (rc, output)}."""
    ckpt = env / "run" / "checkpoints" / "step_0000002.pt"
    procs = {
        "ckpt": launch(env, env / "cache", f"ckpt={ckpt}", f"n={N}"),
        "dataset_name": launch(env, env / "cache", "real=digits", "fake=other"),
        "bad_metric": launch(env, env / "cache", f"ckpt={ckpt}", "metrics=[fid,nope]"),
        "empty": launch(env, env / "cache", "real=empty", "fake=other"),
    }
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        results[name] = (p.returncode, " ".join((out + err).split()))
    return results


def test_cli_checkpoint(cli, env):
    rc, out = cli["ckpt"]
    assert rc == 0, out
    assert "digit-classifier (128-d)" in out and "fid" in out
    written = json.loads((env / "run" / "checkpoints" / "step_0000002.eval.json").read_text())
    assert f"{written['metrics']['fid']:.5g}" in out


def test_cli_real_names_a_dataset(cli):
    """real=digits (the dataset config, with its extractor) against a folder of images."""
    rc, out = cli["dataset_name"]
    assert rc == 0, out
    assert "real: digits-1x16x16 (200 images)" in out and "fake: other (200 images)" in out
    assert "digit-classifier (128-d)" in out


@pytest.mark.parametrize(
    ("name", "needles"),
    [("bad_metric", ["metrics/nope", "fid, is, kid, pr"]), ("empty", ["real=empty", "no images"])],
)
def test_cli_refusals(cli, name, needles):
    rc, out = cli[name]
    assert rc == 2 and "Traceback" not in out and "error:" in out, out
    for needle in needles:
        assert needle in out, (needle, out)

"""The Python API (ganrun.load, ganrun.train) and `ganrun export`: the same numbers as the CLI."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from rich.console import Console
from test_train import run

import ganrun
from ganrun.errors import GanrunError
from ganrun.sampling.command import sample
from ganrun.sampling.export import export


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    run(root / "plain")
    run(root / "cond", "conditioning=projection")
    return root


def cli_images(tmp_path, ckpt, *extra):
    cfg = compose_cfg(
        f"ckpt={ckpt}",
        "n=16",
        "seed=3",
        f"out={tmp_path / 's'}",
        *extra,
        task="sample",
        smoke=False,
    )
    out = sample(cfg, Console(quiet=True))
    return np.load(out / "samples.npz")


def exported(tmp_path, ckpt, fmt):
    cfg = compose_cfg(
        f"ckpt={ckpt}", f"format={fmt}", f"out={tmp_path / fmt}", task="export", smoke=False
    )
    return export(cfg, Console(quiet=True))


def test_load_gives_the_cli_samples(runs, tmp_path):
    """ganrun.load(run).images(16, seed=3) is `ganrun sample n=16 seed=3`'s array, byte for
    byte; sample() is in [-1, 1]; the raw generator (ema=False) differs."""
    g = ganrun.load(runs / "plain")
    want = cli_images(tmp_path, runs / "plain")["images"]
    got = g.images(16, seed=3)
    assert got.dtype == torch.uint8 and tuple(got.shape) == want.shape == (16, 16, 16, 1)
    np.testing.assert_array_equal(got.numpy(), want)
    x = g.sample(16, seed=3)
    assert x.min() >= -1 and x.max() <= 1 and g.step == 4
    assert not torch.equal(ganrun.load(runs / "plain", ema=False).sample(16, seed=3), x)
    assert torch.equal(
        ganrun.load(runs / "plain" / "checkpoints" / "last.pt").sample(16, seed=3), x
    )


def test_conditional_load_takes_labels(runs, tmp_path):
    g = ganrun.load(runs / "cond")
    want = cli_images(tmp_path, runs / "cond", "labels=[3,7]")
    np.testing.assert_array_equal(g.images(16, seed=3, labels=[3, 7]).numpy(), want["images"])
    assert not torch.equal(g.sample(4, labels=[3]), g.sample(4, labels=[7]))


def test_safetensors_export_loads_without_pickle(runs, tmp_path):
    """format=safetensors: generator.safetensors + config.json only; ganrun.load(folder) gives
    the checkpoint's samples exactly, conditional labels included."""
    for name in ("plain", "cond"):
        out = exported(tmp_path / name, runs / name, "safetensors")
        assert sorted(p.name for p in out.iterdir()) == ["config.json", "generator.safetensors"]
        g, ref = ganrun.load(out), ganrun.load(runs / name)
        labels = [1, 2] if name == "cond" else None
        assert torch.equal(g.sample(8, seed=5, labels=labels), ref.sample(8, seed=5, labels=labels))


def test_torchscript_export_matches_the_checkpoint(runs, tmp_path):
    """format=torchscript: torch.jit.load runs it with no ganrun code; its images equal the
    checkpoint generator's to 1e-5 (fp32), labels passed for the conditional one."""
    for name in ("plain", "cond"):
        out = exported(tmp_path / name, runs / name, "torchscript")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(out / "generator.torchscript.pt"))
        g = ganrun.load(runs / name)
        z = g.latents(6, seed=1)
        args = (z,) if g.num_classes is None else (z, torch.tensor([0, 1, 2, 3, 4, 5]))
        with torch.no_grad():
            torch.testing.assert_close(module(*args), g.net(*args), rtol=0, atol=1e-5)
        with pytest.raises(GanrunError, match="torch.jit.load"):
            ganrun.load(out)


def test_refusals(runs, tmp_path):
    with pytest.raises(GanrunError, match="format=tflite is not an export format"):
        exported(tmp_path, runs / "plain", "tflite")
    g = ganrun.load(runs / "plain")
    with pytest.raises(GanrunError, match="truncation=0.7"):
        g.sample(4, truncation=0.7)
    with pytest.raises(GanrunError, match="unconditional"):
        g.sample(4, labels=[1])
    with pytest.raises(GanrunError, match="not config overrides"):
        ganrun.train(["-m", "loss=ns,hinge"])
    with pytest.raises(GanrunError, match=r"optimizer\.g\.lr=-1 must be a number > 0"):
        ganrun.train(["debug=smoke", "optimizer.g.lr=-1"], run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_train_returns_the_run_folder(tmp_path):
    """ganrun.train trains like the CLI (the same losses as train() on the same config) and
    leaves job.json; the folder it returns loads."""
    folder = ganrun.train(["debug=smoke", "loss=hinge"], run_dir=tmp_path / "r")
    assert folder == (tmp_path / "r").resolve()
    assert (folder / "job.json").is_file() and (folder / "checkpoints" / "last.pt").is_file()
    run(tmp_path / "ref", "loss=hinge")
    a, b = (p / "metrics.jsonl" for p in (folder, tmp_path / "ref"))
    strip = lambda path: [ln.split('"perf/')[0] for ln in path.read_text().splitlines()]  # noqa: E731
    assert strip(a) == strip(b) and len(strip(a)) == 4
    assert ganrun.load(folder).step == 4


def test_import_ganrun_loads_no_torch():
    code = "import sys, ganrun; print('torch' in sys.modules, callable(ganrun.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]

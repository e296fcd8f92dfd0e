"""`ganrun export format=onnx`: onnxruntime gives the checkpoint generator's numbers to 1e-5.

Three generators: an unconditional DCGAN, a conditional one (conditioning=projection: labels
are the second, int64 input) and the mlp on 2-D points (ring8). Each runs at a batch size other
than the one it was exported with (the batch axis is dynamic).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from rich.console import Console
from test_train import run

import ganrun
from ganrun.build import build_generator
from ganrun.config import CONF
from ganrun.errors import GanrunError
from ganrun.sampling.export import export, onnx_bytes
from ganrun.sampling.generator import Generator

ort = pytest.importorskip("onnxruntime")

RUNS = {
    "plain": (),
    "cond": ("conditioning=projection",),
    "points": ("model=mlp", "dataset=ring8"),
}


@pytest.fixture(scope="module")
def onnx_exports(tmp_path_factory):
    """name -> (run folder, export folder) for each of RUNS, exported once."""
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, overrides in RUNS.items():
        run(root / name, *overrides)
        cfg = compose_cfg(
            f"ckpt={root / name}",
            "format=onnx",
            f"out={root / name / 'onnx'}",
            task="export",
            smoke=False,
        )
        out[name] = (root / name, export(cfg, Console(quiet=True)))
    return out


def session(folder):
    return ort.InferenceSession(str(folder / "generator.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", list(RUNS))
@pytest.mark.parametrize("n", [1, 5])
def test_onnx_matches_the_checkpoint(onnx_exports, name, n):
    """onnxruntime on the exported file equals Generator.sample (the EMA generator) to 1e-5, and
    the output is not a constant (different seeds give different numbers)."""
    ckpt, folder = onnx_exports[name]
    g = ganrun.load(ckpt)
    s = session(folder)
    feeds = {"z": g.latents(n, seed=7).numpy()}
    labels = None
    if g.num_classes is not None:
        labels = [3, 8, 0, 1, 9][:n]
        feeds["labels"] = np.asarray(labels, dtype=np.int64)
    (got,) = s.run(["images"], feeds)
    want = g.sample(n, seed=7, labels=labels)
    assert got.dtype == np.float32 and got.shape == tuple(want.shape)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=1e-5)
    other = g.sample(n, seed=8, labels=labels)
    assert (want - other).abs().max() > 1e-2


def test_onnx_inputs_and_config(onnx_exports):
    """Input names, dtypes and the dynamic batch axis as documented; config.json as the other
    formats write it (model config, data shape, classes, step, files)."""
    shapes = {"plain": [1, 16, 16], "cond": [1, 16, 16], "points": [2]}
    for name, (ckpt, folder) in onnx_exports.items():
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "generator.onnx"]
        s = session(folder)
        inputs = {i.name: (i.type, i.shape) for i in s.get_inputs()}
        z_dim = ganrun.load(ckpt).z_dim
        want = {"z": ("tensor(float)", ["batch", z_dim])}
        if name == "cond":
            want["labels"] = ("tensor(int64)", ["batch"])
        assert inputs == want
        (out,) = s.get_outputs()
        assert out.name == "images" and out.shape == ["batch", *shapes[name]]
        config = json.loads((folder / "config.json").read_text())
        assert config["format"] == "ganrun.export/1" and config["files"] == ["generator.onnx"]
        assert config["step"] == 4 and config["data"]["shape"] == shapes[name]
        assert config["model"]["z_dim"] == z_dim
        assert bool(config["conditioning"]) == (name == "cond")
        with pytest.raises(GanrunError, match="an ONNX one with onnxruntime"):
            ganrun.load(folder)  # not a safetensors folder: the message says what reads it


def test_onnx_labels_change_the_images(onnx_exports):
    """The labels input is used: class 3 and class 7 give different images for the same z."""
    ckpt, folder = onnx_exports["cond"]
    z = ganrun.load(ckpt).latents(2, seed=0).numpy()
    s = session(folder)
    (a,) = s.run(None, {"z": z, "labels": np.array([3, 3], dtype=np.int64)})
    (b,) = s.run(None, {"z": z, "labels": np.array([7, 7], dtype=np.int64)})
    assert np.abs(a - b).max() > 1e-3


def test_export_is_quiet_and_leaves_logging_as_it_was(onnx_exports, tmp_path, caplog):
    """The ONNX optimizer's INFO lines (one per node it skips) do not reach ganrun's INFO
    console, and the loggers' levels are restored afterwards."""
    import logging

    ckpt, _ = onnx_exports["points"]
    before = logging.getLogger("onnxscript").level, logging.getLogger("onnx_ir").level
    cfg = compose_cfg(
        f"ckpt={ckpt}", "format=onnx", f"out={tmp_path / 'o'}", task="export", smoke=False
    )
    with caplog.at_level(logging.INFO):
        export(cfg, Console(quiet=True))
    noisy = [r.name for r in caplog.records if r.name.startswith(("onnxscript", "onnx_ir"))]
    assert noisy == []
    assert (logging.getLogger("onnxscript").level, logging.getLogger("onnx_ir").level) == before


MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_exports_to_onnx(model):
    """Every conf/model generator (smoke widths, 1x16x16, random init, eval mode) exports, and
    onnxruntime matches it to 1e-5 (absolute, plus 1e-5 relative: untrained StyleGAN-type
    generators are unbounded, and float32 round-off grows with the value)."""
    cfg = compose_cfg(f"model={model}")
    shape = (1, 16, 16)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_generator(cfg.model, shape).eval()
    g = Generator(net, int(cfg.model.z_dim), shape)
    s = ort.InferenceSession(onnx_bytes(g), providers=["CPUExecutionProvider"])
    z = g.latents(3, seed=2)
    (got,) = s.run(["images"], {"z": z.numpy()})
    want = g.sample(3, seed=2)
    assert got.shape == (3, *shape)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)

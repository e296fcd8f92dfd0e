"""ONNX and TorchScript exports against the checkpoint: time, file size, largest difference.

    .venv/bin/python scripts/export_check.py                # three 4-step smoke runs, n=256
    .venv/bin/python scripts/export_check.py --n 1024 --keep runs/

Trains a DCGAN, a conditional DCGAN (conditioning=projection) and the mlp on ring8 for 4 smoke
steps each (ganrun.train), exports each with `format=onnx` and `format=torchscript`, and runs
the exports (onnxruntime on the CPU; torch.jit.load) on the same n latents (and labels) that
`Generator.sample(n, seed=0)` draws, printing a Markdown table: export seconds, file size and
the largest absolute difference from Generator.sample. The tests hold it to 1e-5.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

import ganrun
from ganrun.config import CONF, register
from ganrun.sampling.export import ONNX_FILE, TORCHSCRIPT_FILE, export

RUNS = {
    "dcgan": (),
    "dcgan + conditioning=projection": ("conditioning=projection",),
    "mlp on ring8 (2-D points)": ("model=mlp", "dataset=ring8"),
}


def export_cfg(ckpt: Path, fmt: str, out: Path):
    from hydra import compose, initialize_config_dir

    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("export", overrides=[f"ckpt={ckpt}", f"format={fmt}", f"out={out}"])


def run_onnx(path: Path, z: torch.Tensor, y: torch.Tensor | None) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"z": z.numpy(), **({} if y is None else {"labels": y.numpy()})}
    return session.run(["images"], feeds)[0]


def run_torchscript(path: Path, z: torch.Tensor, y: torch.Tensor | None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return (module(z) if y is None else module(z, y)).numpy()


FORMATS = {"onnx": (ONNX_FILE, run_onnx), "torchscript": (TORCHSCRIPT_FILE, run_torchscript)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="samples compared per export")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        folders = {name: root / f"run{i}" for i, name in enumerate(RUNS)}
        for name, overrides in RUNS.items():
            if not (folders[name] / "checkpoints" / "last.pt").is_file():
                with contextlib.redirect_stdout(io.StringIO()):  # the training log lines
                    ganrun.train(["debug=smoke", *overrides], run_dir=folders[name])
        print("| generator | format | export | file | max abs difference |")
        print("| --- | --- | --- | --- | --- |")
        for name, folder in folders.items():
            g = ganrun.load(folder)
            want = g.sample(args.n, seed=0)
            z = g.latents(args.n, 0)
            y = g.labels_for(args.n, None)
            for fmt, (file, runner) in FORMATS.items():
                t0 = time.perf_counter()
                out = export(export_cfg(folder, fmt, folder / fmt), Console(quiet=True))
                seconds = time.perf_counter() - t0
                diff = float(np.abs(runner(out / file, z, y) - want.numpy()).max())
                size = (out / file).stat().st_size / 1024
                print(f"| {name} | {fmt} | {seconds:.1f} s | {size:.0f} KiB | {diff:.1e} |")


if __name__ == "__main__":
    main()

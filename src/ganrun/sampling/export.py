"""`ganrun export`: a checkpoint's generator for use outside ganrun.

    ganrun export ckpt=<file or run folder> format=safetensors out=<dir>   # weights + config.json
    ganrun export ckpt=<file or run folder> format=torchscript out=<dir>   # a traced module
    ganrun export ckpt=<file or run folder> format=onnx out=<dir>          # an ONNX graph

safetensors: the EMA generator's weights (generator.safetensors, no pickle) and config.json
(model config, data shape, classes, step): `ganrun.load(<dir>)` rebuilds the generator from
those two alone. torchscript: generator.torchscript.pt, traced on the CPU in eval mode, called
as module(z) or, for a conditional generator, module(z, y); torch.jit.load reads it without
ganrun installed. onnx: generator.onnx (fp32, weights inside), inputs `z` (batch, z_dim) float32
and, for a conditional generator, `labels` (batch,) int64; output `images`; the batch axis is
dynamic. Made by torch.onnx's exporter (torch.export + onnxscript, the one torch keeps; the
TorchScript-based one is deprecated), so onnxruntime or any ONNX runtime runs it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console

from ganrun.atomic_io import atomic_write
from ganrun.errors import GanrunError
from ganrun.sampling.generator import (
    EXPORT_CONFIG,
    EXPORT_FORMAT,
    EXPORT_WEIGHTS,
    Generator,
    from_checkpoint,
)
from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint

TORCHSCRIPT_FILE = "generator.torchscript.pt"
ONNX_FILE = "generator.onnx"
ONNX_INPUTS = ("z", "labels")  # labels only for a conditional generator
ONNX_OUTPUT = "images"


def export_config(ckpt: dict, source: Path, files: list[str]) -> dict:
    saved = ckpt["config"]
    return {
        "format": EXPORT_FORMAT,
        "model": saved["model"],
        "conditioning": saved.get("conditioning"),
        "data": ckpt["data"],
        "step": int(ckpt["step"]),
        "source": str(source),
        "files": files,
    }


def safetensors_bytes(G: Generator) -> bytes:
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in G.net.state_dict().items()}
    return save(state, metadata={"format": EXPORT_FORMAT})


def example_inputs(G: Generator) -> tuple[torch.Tensor, ...]:
    """2 latents (and 2 int64 labels, when conditional): what tracing and export call G on."""
    z = G.latents(2, 0)
    return (z,) if G.num_classes is None else (z, torch.arange(2) % G.num_classes)


def torchscript_bytes(G: Generator) -> bytes:
    """The generator traced on 2 example inputs (labels too, when conditional)."""
    example = example_inputs(G)
    with torch.no_grad(), warnings.catch_warnings():
        # torch marks TorchScript deprecated in favour of torch.export; it still loads anywhere
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(G.net.cpu(), example, check_trace=True)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    return buf.getvalue()


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """The named loggers at `level` for the block, then as they were: the ONNX optimizer
    passes log every node they skip at INFO, which `ganrun export`'s INFO root would print."""
    loggers = [logging.getLogger(n) for n in names]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, before):
            lg.setLevel(lvl)


def onnx_bytes(G: Generator) -> bytes:
    """The generator as one ONNX model with a dynamic batch axis (weights inside the file).

    The example batch is 2, not 1, so torch.export does not specialise the batch size to a
    constant; the ONNX graph then runs any batch, 1 included.
    """
    from torch.export import Dim

    example = example_inputs(G)
    names = list(ONNX_INPUTS[: len(example)])
    batch = Dim("batch")
    with torch.no_grad(), warnings.catch_warnings(), quiet_loggers("onnxscript", "onnx_ir"):
        warnings.simplefilter("ignore")  # torch.export's notes on the dynamic-shape renaming
        program = torch.onnx.export(
            G.net.cpu(),
            example,
            dynamo=True,
            input_names=names,
            output_names=[ONNX_OUTPUT],
            dynamic_shapes=tuple({0: batch} for _ in example),
            external_data=False,
            verbose=False,
        )
    return program.model_proto.SerializeToString()


WRITERS = {
    "safetensors": (EXPORT_WEIGHTS, safetensors_bytes),
    "torchscript": (TORCHSCRIPT_FILE, torchscript_bytes),
    "onnx": (ONNX_FILE, onnx_bytes),
}


def export(cfg: DictConfig, console: Console | None = None) -> Path:
    """Write the export folder; returns it."""
    console = console or Console()
    if cfg.format not in WRITERS:
        raise GanrunError(
            f"format={cfg.format} is not an export format; use one of {', '.join(WRITERS)}."
        )
    path = resolve_checkpoint(cfg.ckpt, "ckpt")
    ckpt = load_checkpoint(path, "ckpt")
    G = from_checkpoint(ckpt, cfg.ema, "cpu")
    name, writer = WRITERS[cfg.format]
    out = Path(cfg.out) if cfg.out else path.parent.parent / f"export_{cfg.format}"
    atomic_write(out / name, writer(G))
    config = export_config(ckpt, path, [name])
    atomic_write(out / EXPORT_CONFIG, (json.dumps(config, indent=2) + "\n").encode())
    console.print(f"exported {path} (step {ckpt['step']}, {cfg.format}) -> {out}")
    return out

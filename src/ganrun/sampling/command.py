"""`ganrun sample`: draw from a checkpoint's generator, rebuilt from the config inside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from rich.console import Console

from ganrun.atomic_io import write_npz
from ganrun.build import resolve_device
from ganrun.sampling.generator import from_checkpoint
from ganrun.sampling.images import save_grid, save_scatter, to_uint8
from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint, run_folder_of


def sample(cfg: DictConfig, console: Console | None = None) -> Path:
    """Write grid.png (or scatter.png) and samples.npz; returns the output folder."""
    console = console or Console()
    path = resolve_checkpoint(cfg.ckpt, "ckpt")
    ckpt = load_checkpoint(path, "ckpt")
    G = from_checkpoint(ckpt, cfg.ema, resolve_device(cfg.device))
    labels = G.labels_for(cfg.n, cfg.labels)
    samples = G.sample(
        cfg.n,
        cfg.seed,
        cfg.labels,
        truncation=cfg.get("truncation"),
        batch_size=cfg.batch_size,
        truncation_cutoff=cfg.get("truncation_cutoff"),
    )
    extra = {} if labels is None else {"labels": labels.numpy().astype(np.int64)}
    out = Path(cfg.out) if cfg.out else run_folder_of(path) / f"samples_{ckpt['step']:07d}"
    if samples.dim() == 4:
        save_grid(samples, out / "grid.png")
        images = to_uint8(samples).permute(0, 2, 3, 1).numpy()
        write_npz(out / "samples.npz", images=images, **extra)
    else:
        save_scatter(samples, out / "scatter.png")
        write_npz(out / "samples.npz", points=samples.numpy().astype(np.float32), **extra)
    console.print(f"{cfg.n} samples from {path} (step {ckpt['step']}) -> {out}")
    return out

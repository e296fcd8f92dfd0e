"""`ganrun sample`: draw from a checkpoint's generator, rebuilt from the config inside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from ganrun.atomic_io import write_npz
from ganrun.build import build_generator, resolve_device
from ganrun.errors import GanrunError
from ganrun.sampling.generate import class_labels, generate
from ganrun.sampling.images import save_grid, save_scatter, to_uint8
from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint, run_folder_of


def load_generator(ckpt: dict, ema: bool, device: torch.device) -> torch.nn.Module:
    """The checkpoint's generator (EMA weights when `ema`), rebuilt from its own config."""
    saved = OmegaConf.create(ckpt["config"])
    data = ckpt["data"]
    G = build_generator(
        saved.model, tuple(data["shape"]), saved.get("conditioning"), data["num_classes"]
    )
    G.load_state_dict(ckpt["players"]["G"]["ema" if ema else "net"])
    return G.to(device).eval()


def sample(cfg: DictConfig, console: Console | None = None) -> Path:
    """Write grid.png (or scatter.png) and samples.npz; returns the output folder."""
    console = console or Console()
    if cfg.n < 1:
        raise GanrunError(f"n={cfg.n}: the number of samples must be at least 1.")
    path = resolve_checkpoint(cfg.ckpt, "ckpt")
    ckpt = load_checkpoint(path, "ckpt")
    saved = OmegaConf.create(ckpt["config"])
    device = resolve_device(cfg.device)
    conditioning, num_classes = saved.get("conditioning"), ckpt["data"]["num_classes"]
    G = load_generator(ckpt, cfg.ema, device)
    labels = None
    if conditioning:
        labels = class_labels(cfg.n, num_classes, cfg.labels)
    elif cfg.labels:
        raise GanrunError(
            f"labels={list(cfg.labels)}: this checkpoint's model is unconditional (no "
            f"conditioning in its config). Drop labels=, or train with conditioning=projection."
        )

    z = torch.randn(cfg.n, saved.model.z_dim, generator=torch.Generator().manual_seed(cfg.seed))
    y = None if labels is None else labels.to(device)
    samples = generate(G, z.to(device), cfg.batch_size, y)
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

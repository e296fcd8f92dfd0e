"""A trained generator outside a run: `ganrun.load(path)` returns one.

    g = ganrun.load("outputs/<date>/<time>")         # a run folder, a .pt checkpoint, or an
    x = g.sample(16, seed=3)                          #   export folder (ganrun export)
    u8 = g.images(16, seed=3)                         # what `ganrun sample n=16 seed=3` writes

The latents of seed s are those `ganrun sample` and `ganrun eval` draw (a torch.Generator of
their own seeded with s), so the numbers are the same in all three.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from ganrun.build import build_generator
from ganrun.errors import GanrunError
from ganrun.sampling.generate import class_labels, generate
from ganrun.sampling.images import to_uint8

EXPORT_FORMAT = "ganrun.export/1"
EXPORT_CONFIG = "config.json"
EXPORT_WEIGHTS = "generator.safetensors"


@dataclass
class Generator:
    """A generator network with what sampling from it needs: latent size, classes, shape."""

    net: nn.Module  # in eval mode
    z_dim: int
    data_shape: tuple[int, ...]
    num_classes: int | None = None  # set for a conditional generator
    step: int | None = None  # the training step its weights are from

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def latents(self, n: int, seed: int = 0) -> Tensor:
        """The n latents of `seed`, drawn on the CPU without touching the global RNG."""
        return torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed))

    def labels_for(self, n: int, labels: list[int] | None) -> Tensor | None:
        """The classes to draw (cycled to n; every class in turn by default), or None."""
        if self.num_classes is None:
            if labels:
                raise GanrunError(
                    f"labels={list(labels)}: this generator is unconditional (no conditioning "
                    f"in its config). Drop labels=, or train with conditioning=projection."
                )
            return None
        return class_labels(n, self.num_classes, labels)

    def sample(
        self,
        n: int,
        seed: int = 0,
        labels: list[int] | None = None,
        truncation: float | None = None,
        batch_size: int = 256,
        truncation_cutoff: int | None = None,
    ) -> Tensor:
        """n samples as float32 in [-1, 1] on the CPU: (n, C, H, W) images or (n, 2) points.

        truncation: psi of the truncation trick (1: none, 0: the average image; None: off),
        for generators with `supports_truncation`; truncation_cutoff: truncate only the first
        that many layers (None: all)."""
        if n < 1:
            raise GanrunError(f"n={n}: the number of samples must be at least 1.")
        y = self.labels_for(n, labels)
        z = self.latents(n, seed).to(self.device)
        y = None if y is None else y.to(self.device)
        return generate(self.net, z, batch_size, y, truncation, truncation_cutoff)

    def images(self, n: int, seed: int = 0, labels: list[int] | None = None, **kw) -> Tensor:
        """n images as uint8 (n, H, W, C), the `images` array of `ganrun sample`'s samples.npz."""
        samples = self.sample(n, seed, labels, **kw)
        if samples.dim() != 4:
            raise GanrunError("images(): this generator makes 2-D points; use sample().")
        return to_uint8(samples).permute(0, 2, 3, 1).contiguous()


def from_checkpoint(ckpt: dict, ema: bool = True, device: str = "cpu") -> Generator:
    """The checkpoint's generator (EMA weights when `ema`), rebuilt from its own config."""
    saved = OmegaConf.create(ckpt["config"])
    data = ckpt["data"]
    if "source_shape" in data:  # pix2pix, CycleGAN, StarGAN: images in, images out
        raise GanrunError(
            f"this checkpoint is a translation run (method={saved.method._target_.rsplit('.', 1)[-1]}"
            f"): its generator translates images and draws no latent z. Use `ganrun translate "
            f"ckpt=<file> input=<folder|test>` for its outputs and `ganrun eval ckpt=<file>` for "
            f"its metrics."
        )
    conditional = bool(saved.get("conditioning"))
    net = build_generator(
        saved.model, tuple(data["shape"]), saved.get("conditioning"), data["num_classes"]
    )
    net.load_state_dict(ckpt["players"]["G"]["ema" if ema else "net"])
    return Generator(
        net.to(device).eval(),
        int(saved.model.z_dim),
        tuple(data["shape"]),
        data["num_classes"] if conditional else None,
        int(ckpt["step"]),
    )


def from_export(folder: Path, device: str = "cpu") -> Generator:
    """A `ganrun export format=safetensors` folder: config.json and the weights, no pickle."""
    from safetensors.torch import load_file

    config = json.loads((folder / EXPORT_CONFIG).read_text())
    if config.get("format") != EXPORT_FORMAT:
        raise GanrunError(
            f"{folder / EXPORT_CONFIG} is not a ganrun export (format {config.get('format')!r}, "
            f"expected {EXPORT_FORMAT!r}). Export with `ganrun export ckpt=<file> out=<dir>`."
        )
    if not (folder / EXPORT_WEIGHTS).is_file():
        raise GanrunError(
            f"{folder} holds a ganrun export without {EXPORT_WEIGHTS} (files: "
            f"{', '.join(config.get('files', []))}); a TorchScript export loads with "
            f"torch.jit.load, an ONNX one with onnxruntime. Export with format=safetensors for "
            f"ganrun.load."
        )
    shape = tuple(config["data"]["shape"])
    model = OmegaConf.create(config["model"])
    conditioning = OmegaConf.create(config["conditioning"]) if config["conditioning"] else None
    net = build_generator(model, shape, conditioning, config["data"]["num_classes"])
    net.load_state_dict(load_file(folder / EXPORT_WEIGHTS))
    classes = config["data"]["num_classes"] if conditioning else None
    return Generator(net.to(device).eval(), int(model.z_dim), shape, classes, config["step"])


def load(path: str | Path, ema: bool = True, device: str = "cpu") -> Generator:
    """A run folder (its checkpoints/last.pt), a checkpoint file, or an export folder."""
    from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint

    p = Path(path)
    if p.is_dir() and (p / EXPORT_CONFIG).is_file():
        return from_export(p, device)
    ckpt = load_checkpoint(resolve_checkpoint(p, "path"), "path")
    return from_checkpoint(ckpt, ema, device)

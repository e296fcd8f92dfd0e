"""`ganrun translate`: a translation run's generator on a folder of images or a dataset split.

    ganrun translate ckpt=<run>/checkpoints/last.pt                 # the run's test split
    ganrun translate ckpt=... input=photos/ out=translated/         # every image in a folder
    ganrun translate ckpt=... direction=BtoA                        # CycleGAN: G_BA instead
    ganrun translate ckpt=... domain=blue                           # StarGAN: the target domain

Everything is rebuilt from the checkpoint alone: the method and its weights from its config
and data facts; input=<split> reads that split of the dataset the config names (a folder
needs no dataset). Writes, in `out`:
one PNG per input under the input's name (<stem>.png), grid.png (rows: input / output /
target, the target row when the input has ground truth) and translations.npz (uint8 NHWC
`inputs`, `outputs`, `targets` when known, `names`, `domains` for StarGAN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from rich.console import Console
from torch import Tensor

from ganrun.atomic_io import atomic_write, write_npz
from ganrun.build import build_method, build_state, make, resolve_device
from ganrun.data.base import from_uint8
from ganrun.errors import GanrunError
from ganrun.evaluation.translation_command import is_translation
from ganrun.sampling.images import png_bytes, save_grid, to_uint8
from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint, run_folder_of
from ganrun.training.methods.translation import grid

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
GRID_IMAGES = 16  # inputs shown in grid.png


def read_folder(folder: Path, shape: tuple[int, ...]) -> tuple[Tensor, list[str]]:
    """Every image file in `folder` (sorted by name) as uint8 (N, C, H, W) of the run's source
    shape: converted to grey or RGB, resized (bicubic) when its size differs."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GanrunError(
            f"input={folder} holds no images ({', '.join(IMAGE_SUFFIXES)}). Point input= at a "
            f"folder of images, or at a split of the run's dataset (input=test)."
        )
    channels, h, w = shape
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise GanrunError(
            f"input={folder}: the run's inputs have {channels} channels; only 1 or 3 read from files."
        )
    images = []
    for path in files:
        with Image.open(path) as img:
            img = img.convert(mode)
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BICUBIC)
            array = np.asarray(img, dtype=np.uint8).reshape(h, w, channels)
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return torch.stack(images), [p.name for p in files]


def dataset_node(config: DictConfig, split: str, reverse: bool) -> DictConfig:
    """The run's dataset config reading `split` as its test set, the domains swapped when
    `reverse` (CycleGAN's other generator)."""
    node = OmegaConf.create(OmegaConf.to_container(config.dataset))
    if split != node.get("eval_split", "test"):
        if "eval_split" not in node:
            raise GanrunError(
                f"input={split}: the run's dataset ({node.get('_target_')}) has one fixed test "
                f"set; use input=test, or a folder of images."
            )
        node.eval_split = split
    if reverse:
        node.direction = "AtoB" if node.get("direction", "AtoB") == "BtoA" else "BtoA"
    return node


def domain_index(domain: Any, names: list[str], n_domains: int | None) -> int:
    """domain= as an index, or one of the domain names (colored_mnist's colours, read from
    the dataset or, for a folder input, from the run's config)."""
    names = list(names)
    if isinstance(domain, str) and domain in names:
        return names.index(domain)
    try:
        index = int(domain)
    except (TypeError, ValueError):
        index = -1
    if n_domains is None or not 0 <= index < n_domains:
        raise GanrunError(
            f"domain={domain}: not a domain of this run; use an index 0..{(n_domains or 1) - 1}"
            + (f" or a name: {', '.join(names)}." if names else ".")
        )
    return index


def method_from_checkpoint(ckpt: dict[str, Any], device: torch.device) -> tuple[Any, Any]:
    """(method, state) with the checkpoint's weights, from its config and data facts alone
    (no dataset is read: a folder of images translates on a machine without the data)."""
    config = OmegaConf.create(ckpt["config"])
    facts = ckpt["data"]
    shape, source = tuple(facts["shape"]), tuple(facts["source_shape"])
    method = build_method(config, shape, device, facts["num_classes"], 1, source)
    state = build_state(config, shape, device, facts["num_classes"], method)
    state.load_state_dict(ckpt)
    return method, state


def translate_images(translate: Any, a: Tensor, domains: Tensor | None, batch_size: int) -> Tensor:
    outs = []
    for start in range(0, len(a), batch_size):
        x = from_uint8(a[start : start + batch_size])
        d = None if domains is None else domains[start : start + batch_size]
        outs.append(to_uint8(translate(x, d)))
    return torch.cat(outs)


def translate(cfg: DictConfig, console: Console | None = None) -> Path:
    """Translate, write the PNGs, grid.png and translations.npz; returns the output folder."""
    console = console or Console()
    path = resolve_checkpoint(cfg.ckpt, "ckpt")
    ckpt = load_checkpoint(path, "ckpt")
    if not is_translation(ckpt):
        raise GanrunError(
            f"ckpt={cfg.ckpt} is not a translation run (method=pix2pix, cyclegan or stargan on "
            f"translation data); `ganrun sample ckpt=...` draws from a noise-to-image generator."
        )
    config = OmegaConf.create(ckpt["config"])
    trained = config.dataset.get("direction", "AtoB")
    if cfg.direction not in (None, "AtoB", "BtoA"):
        raise GanrunError(f"direction={cfg.direction}: use AtoB or BtoA (null: the run's own).")
    reverse = cfg.direction is not None and cfg.direction != trained
    folder = Path(str(cfg.input)) if Path(str(cfg.input)).is_dir() else None
    device = resolve_device(cfg.device)
    method, state = method_from_checkpoint(ckpt, device)
    if not cfg.ema:  # the raw generators translate
        for player in state.players.values():
            player.ema = None
    if reverse and "G_BA" not in state.players:
        raise GanrunError(
            f"direction={cfg.direction}: this {config.method._target_.rsplit('.', 1)[-1]} run "
            f"learned {trained} only (one generator). Drop direction=, or train with "
            f"dataset.direction={cfg.direction}."
        )
    fn = method.translator(state, "BtoA") if reverse else method.translator(state)
    if folder is None and any(c in str(cfg.input) for c in "/\\."):
        raise GanrunError(
            f"input={cfg.input} is not a folder (nothing there), nor a split name of the run's "
            f"dataset (test, train). Pass an existing folder of images, or input=test."
        )
    data = (
        None
        if folder is not None
        else make(dataset_node(config, str(cfg.input), reverse), "dataset")
    )
    if folder is not None:
        shape = tuple(ckpt["data"]["shape" if reverse else "source_shape"])
        a, names = read_folder(folder, shape)
        targets, domains = None, None
    else:
        test = data.test_set(cfg.n)
        a, names = test.a, list(test.names)
        targets = test.b if test.paired else None
        domains = getattr(test, "b_domains", None)
    a, names = a[: cfg.n] if cfg.n else a, names[: cfg.n] if cfg.n else names
    if cfg.domain is not None:
        names_of = getattr(data, "domains", None) or list(config.dataset.get("colors") or {})
        index = domain_index(cfg.domain, names_of, ckpt["data"]["num_classes"])
        domains = torch.full((len(a),), index, dtype=torch.long)
    elif domains is not None:
        domains = domains[: len(a)]
    outputs = translate_images(fn, a, domains, cfg.batch_size)
    out = Path(cfg.out) if cfg.out else run_folder_of(path) / f"translations_{ckpt['step']:07d}"
    write_outputs(out, a, outputs, targets, names, domains)
    console.print(f"{len(a)} translations from {path} (step {ckpt['step']}) -> {out}")
    return out


def write_outputs(
    out: Path,
    inputs: Tensor,
    outputs: Tensor,
    targets: Tensor | None,
    names: list[str],
    domains: Tensor | None,
) -> None:
    def nhwc(t: Tensor) -> np.ndarray:
        return t.permute(0, 2, 3, 1).contiguous().numpy()

    for name, image in zip(names, nhwc(outputs)):
        atomic_write(
            out / f"{Path(name).stem}.png",
            png_bytes(image[..., 0] if image.shape[-1] == 1 else image),
        )
    k = min(GRID_IMAGES, len(inputs))
    rows = [from_uint8(inputs[:k]), from_uint8(outputs[:k])]
    if targets is not None:
        rows.append(from_uint8(targets[:k]))
    save_grid(grid(rows), out / "grid.png")
    arrays: dict[str, np.ndarray] = {
        "inputs": nhwc(inputs),
        "outputs": nhwc(outputs),
        "names": np.array(names),
    }
    if targets is not None:
        arrays["targets"] = nhwc(targets[: len(inputs)])
    if domains is not None:
        arrays["domains"] = domains.numpy().astype(np.int64)
    write_npz(out / "translations.npz", **arrays)

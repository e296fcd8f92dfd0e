"""`ganrun eval ckpt=` on a translation run (pix2pix, CycleGAN, StarGAN), and the one rebuild
of a translator from a checkpoint alone.

    ganrun eval ckpt=<run>/checkpoints/last.pt [n=1000] [metrics=[fid,kid]] [dataset=...]

A translation checkpoint is recognised by `data.source_shape` (train() records it only for
translation data). Its config rebuilds the dataset (or `dataset=` given here, e.g. the same
data under another root), the method and its players; the weights come from the checkpoint;
`method.translator(state)` translates the first n test images. The result, in
<ckpt>.eval.json and as a table, has the paired metrics (PSNR, SSIM, L1) and content
accuracies beside every baseline of the dataset, and, with metrics= (default [fid]), FID/KID
of the translations against the target domain's test images in the run's feature space.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from ganrun.atomic_io import atomic_write
from ganrun.build import build_method, build_state, make
from ganrun.data.translation import Translate
from ganrun.errors import GanrunError
from ganrun.evaluation.translation import TranslationEvaluator

COLUMNS = ("psnr", "ssim", "l1", "digit_acc", "colour_acc")  # table rows, in this order


def is_translation(ckpt: dict[str, Any]) -> bool:
    return "source_shape" in (ckpt.get("data") or {})


def translator_from_checkpoint(
    ckpt: dict[str, Any], device: torch.device, dataset: DictConfig | None = None
) -> tuple[Translate, Any, Any]:
    """(translate, the dataset, the state) rebuilt from a translation checkpoint alone
    (`dataset` replaces the checkpoint's dataset config, e.g. to read it from another root)."""
    config = OmegaConf.create(ckpt["config"])
    node = dataset if dataset is not None else config.dataset
    data = make(node, "dataset")
    if not hasattr(data, "test_set") or tuple(data.shape) != tuple(ckpt["data"]["shape"]):
        raise GanrunError(
            f"dataset={node.get('_target_')} gives samples of shape {tuple(data.shape)}, but "
            f"this translation run was trained on {tuple(ckpt['data']['shape'])}; evaluate it "
            f"on its own dataset (drop dataset=) or on one of the same shape."
        )
    method = build_method(
        config, data.shape, device, data.num_classes, source_shape=data.source_shape, data=data
    )
    state = build_state(config, data.shape, device, data.num_classes, method)
    state.load_state_dict(ckpt)
    return method.translator(state), data, state


def image_values(
    cfg: DictConfig, config: DictConfig, data: Any, pred: torch.Tensor, device: torch.device
) -> tuple[dict[str, float], str | None, int | None, int]:
    """FID/KID/... of the translations against the target test images (metrics= [] skips)."""
    from ganrun.evaluation.image_evaluator import ImageEvaluator, build_extractor, build_metrics
    from ganrun.evaluation.imagesets import DatasetImages
    from ganrun.sampling.images import to_uint8

    chosen = cfg.get("metrics") or {}  # metrics=[] leaves no node at all
    metrics = build_metrics(chosen)
    node = chosen.get("features") or OmegaConf.select(config, "metrics.features")
    if not metrics or node is None:
        return {}, None, None, 0
    real = DatasetImages(data, OmegaConf.to_container(config.dataset, resolve=True))
    n_real = cfg.n_real if cfg.n_real is not None else len(pred)
    evaluator = ImageEvaluator(
        build_extractor(node, device),
        metrics,
        real,
        n_real,
        tuple(data.shape),
        len(pred),
        "Pass a larger n= (and n_real=), or other metrics (metrics=[...]); metrics=[] keeps "
        "only the translation metrics.",
        "translations",
        cfg.cache,
    )
    result = evaluator(to_uint8(pred).split(cfg.batch_size))
    return result.values, result.features, result.dims, result.n_real


def baseline_table(values: dict[str, float], baselines: list[str]) -> Table:
    """metric | model | <baseline>... | target: the translator beside its baselines."""
    table = Table(title="ganrun eval (translation)")
    columns = ["model", *baselines, "target"]
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for metric in COLUMNS:
        keys = [metric] + [f"{metric}_{name}" for name in columns[1:]]
        if not any(k in values for k in keys):
            continue
        table.add_row(metric, *(f"{values[k]:.4g}" if k in values else "-" for k in keys))
    return table


def evaluate_translation(
    cfg: DictConfig, path: Path, ckpt: dict[str, Any], device: torch.device, console: Console
) -> dict[str, Any]:
    """The translation metrics of one checkpoint: printed, written, returned."""
    translate, data, _ = translator_from_checkpoint(ckpt, device, cfg.get("dataset") or None)
    evaluator = TranslationEvaluator(data, cfg.n, device)
    pred = evaluator.translations(translate)
    values = evaluator(translate, pred)
    config = OmegaConf.create(ckpt["config"])
    images, features, dims, n_real = image_values(cfg, config, data, pred, device)
    values.update(images)
    result = {
        "features": features,
        "feature_dims": dims,
        "metrics": values,
        "fake": f"{path} (step {ckpt['step']}) translating {len(pred)} test images",
        "n_fake": len(pred),
        "real": "the dataset's test targets",
        "n_real": n_real,
        "baselines": sorted(data.baselines()),
        "ckpt": str(path),
        "step": ckpt["step"],
    }
    out = Path(cfg.out) if cfg.out else path.with_name(f"{path.stem}.eval.json")
    atomic_write(out, (json.dumps(result, indent=2) + "\n").encode())
    console.print(baseline_table(values, result["baselines"]))
    for key in sorted(images):
        console.print(f"{key}: {images[key]:.5g} ({features}, {dims}-d, {n_real} real images)")
    console.print(f"written: {out}")
    return result

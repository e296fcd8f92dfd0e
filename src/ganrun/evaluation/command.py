"""`ganrun eval`: sample-quality metrics of a checkpoint's generator or of an image set.

    ganrun eval ckpt=<file> metrics=[fid,kid,is,pr] n=10000     # -> <ckpt>.eval.json
    ganrun eval real=<folder|npz|dataset> fake=<folder|samples.npz> metrics=[fid]

The fakes are a checkpoint's generator (rebuilt from the config inside it, EMA weights,
latents from `seed`, as `ganrun sample` draws them) or an image set. The reals are `real=`,
`dataset=`, or else the checkpoint's own dataset, whose statistics are cached. The feature
space is metrics.features, else the dataset's default (the checkpoint's config, or
dataset=), else Inception for plain folders, as pytorch-fid does; every result names it.
A checkpoint's dataset also contributes its own metrics (mode counts for ring8, grid25,
stacked_mnist); on 2-D points those are all there is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from ganrun.atomic_io import atomic_write
from ganrun.build import make, resolve_device
from ganrun.config import CONF
from ganrun.errors import GanrunError
from ganrun.evaluation.image_evaluator import (
    EvalResult,
    ImageEvaluator,
    build_extractor,
    build_metrics,
    check_shapes,
    generated_images,
)
from ganrun.evaluation.imagesets import DatasetImages, ImageSet, open_image_set
from ganrun.sampling.generate import generate, truncation_options
from ganrun.sampling.generator import from_checkpoint
from ganrun.sampling.images import to_uint8
from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint

FOLDER_FEATURES = CONF / "metrics" / "features" / "inception.yaml"  # pytorch-fid's choice


def check_sources(cfg: DictConfig) -> None:
    """Exactly one fake source, at most one real source, and a real one where none is implied."""
    if bool(cfg.ckpt) == bool(cfg.fake):
        raise GanrunError(
            f"ganrun eval needs exactly one of ckpt= (a generator to sample) and fake= (a folder "
            f"or samples.npz); got ckpt={cfg.ckpt} fake={cfg.fake}."
        )
    if cfg.real and cfg.get("dataset"):
        raise GanrunError(
            f"real={cfg.real} and dataset= both name the real images; pass one of them."
        )
    if cfg.fake and not cfg.real and not cfg.get("dataset"):
        raise GanrunError(
            f"fake={cfg.fake} needs real images to compare with: pass real=<folder, .npz or "
            f"dataset name> (e.g. real=mnist dataset.root=../shared/data)."
        )
    if cfg.n < 1 or (cfg.n_real is not None and cfg.n_real < 1):
        raise GanrunError(f"n={cfg.n}, n_real={cfg.n_real}: sample counts must be at least 1.")


class Fakes:
    """The generated side: a checkpoint's generator, or an image set from disk."""

    def __init__(
        self,
        cfg: DictConfig,
        device: torch.device,
        loaded: tuple[Path, dict[str, Any]] | None = None,
    ) -> None:
        """loaded: cfg.ckpt's (path, checkpoint) when the caller has read it already."""
        self.ckpt: dict[str, Any] | None = None
        self.image_set: ImageSet | None = None
        if cfg.ckpt:
            if loaded is None:
                path = resolve_checkpoint(cfg.ckpt, "ckpt")
                loaded = path, load_checkpoint(path, "ckpt")
            self.path, self.ckpt = loaded
            generator = from_checkpoint(self.ckpt, cfg.ema, device)
            self.G = generator.net
            self.shape = generator.data_shape
            self.n, self.label = cfg.n, f"{self.path} (step {self.ckpt['step']})"
            # the latents and classes `ganrun sample` draws for the same seed and n
            self.z = generator.latents(cfg.n, cfg.seed).to(device)
            labels = generator.labels_for(cfg.n, None)
            self.labels = None if labels is None else labels.to(device)
            self.batch_size = cfg.batch_size
            # psi and layer cutoff, as `ganrun sample` passes them (checked before any work)
            self.truncation = {
                "truncation": cfg.get("truncation"),
                "truncation_cutoff": cfg.get("truncation_cutoff"),
            }
            truncation_options(self.G, **self.truncation)
        else:
            self.image_set = open_image_set(cfg.fake, "fake")
            self.shape, self.n, self.label = self.image_set.shape, len(self.image_set), cfg.fake

    @property
    def config(self) -> DictConfig:
        """The checkpoint's training config (empty for an image set)."""
        return OmegaConf.create(self.ckpt["config"] if self.ckpt else {})

    def all_samples(self) -> torch.Tensor:
        """Every generated sample as float (for a dataset's own metrics, e.g. mode counts)."""
        return generate(self.G, self.z, self.batch_size, self.labels, **self.truncation)

    def chunks(self, samples: torch.Tensor | None = None) -> Iterable[torch.Tensor]:
        """uint8 chunks: of `samples` when already drawn, else streamed from G or the set."""
        if samples is not None:
            return to_uint8(samples).split(self.batch_size)
        if self.image_set is not None:
            return self.image_set.chunks(self.n, 500)
        return generated_images(self.G, self.z, self.labels, self.batch_size, **self.truncation)


def real_side(cfg: DictConfig, fakes: Fakes) -> tuple[ImageSet | None, Any]:
    """(the real image set, or None for 2-D data; the dataset object when one is built)."""
    if cfg.real:
        return open_image_set(cfg.real, "real"), None
    if cfg.get("dataset"):
        data = make(cfg.dataset, "dataset")
    else:
        try:
            data = make(fakes.config.dataset, "dataset")
        except GanrunError as err:
            raise GanrunError(
                f"{err} (That is the dataset in ckpt={cfg.ckpt}'s config; to read another copy "
                f"pass real=<folder> or dataset=<name> dataset.root=<folder>.)"
            ) from None
    node = cfg.get("dataset") or fakes.config.dataset
    if len(data.shape) != 3:
        return None, data
    return DatasetImages(data, OmegaConf.to_container(node, resolve=True)), data


def features_node(cfg: DictConfig, fakes: Fakes) -> DictConfig | None:
    """metrics.features as given (or set by dataset=), else the checkpoint's, else Inception."""
    if cfg.metrics.get("features") is not None:
        return cfg.metrics.features
    if fakes.ckpt is not None:  # the extractor (and weights file) the run was trained with
        weights = OmegaConf.select(cfg, "metrics.fid.weights")
        if weights is not None:
            raise GanrunError(
                f"metrics.fid.weights={weights}: ckpt={cfg.ckpt} is evaluated with the extractor "
                f"in its own config unless you pick one; add metrics/features=inception."
            )
        return OmegaConf.select(fakes.config, "metrics.features")
    # under a copy of cfg.metrics, so that its ${metrics.fid.weights} reads this command line
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True)
    metrics["features"] = OmegaConf.to_container(OmegaConf.load(FOLDER_FEATURES))
    return OmegaConf.create({"metrics": metrics}).metrics.features


def image_metrics(
    cfg: DictConfig, fakes: Fakes, real: ImageSet, device: torch.device, samples: Any
) -> EvalResult | None:
    metrics = build_metrics(cfg.metrics)
    if not metrics:
        return None
    check_shapes(real, fakes.shape, fakes.label)  # before loading any network
    node = features_node(cfg, fakes)
    if node is None:
        raise GanrunError(
            f"ckpt={cfg.ckpt}: its config names no feature extractor (a checkpoint from before "
            f"`metrics`). Pass metrics/features=digit_classifier or metrics/features=inception."
        )
    n_real = cfg.n_real if cfg.n_real is not None else fakes.n
    fix = "Pass a larger n= (and n_real=), or other metrics (metrics=[...])."
    evaluator = ImageEvaluator(
        build_extractor(node, device),
        metrics,
        real,
        n_real,
        fakes.shape,
        fakes.n,
        fix,
        fakes.label,
        cfg.cache,
    )
    return evaluator(fakes.chunks(samples))


def result_table(result: dict[str, Any]) -> Table:
    """The values, with the feature space in the title (tables never mix extractors)."""
    features = result.get("features")
    table = Table(title="ganrun eval")
    table.add_column("metric")
    table.add_column("value", justify="right")
    space = f"{features} ({result['feature_dims']}-d)" if features else "none (2-D points)"
    table.add_row("features", space, end_section=True)
    for key, value in result["metrics"].items():
        table.add_row(key, f"{value:.5g}")
    return table


def print_result(console: Console, result: dict[str, Any], out: Path | None) -> None:
    console.print(result_table(result))
    if result.get("note"):
        console.print(f"note: {result['note']}")
    console.print(f"fake: {result['fake']} ({result['n_fake']} images)")
    console.print(f"real: {result['real']} ({result['n_real']} images)")
    if out is not None:
        console.print(f"written: {out}")


def default_out(cfg: DictConfig, fakes: Fakes) -> Path | None:
    if cfg.out:
        return Path(cfg.out)
    if fakes.ckpt is not None:
        return fakes.path.with_name(f"{fakes.path.stem}.eval.json")
    return None


def evaluate(cfg: DictConfig, console: Console | None = None) -> dict[str, Any]:
    """Compute, print and (for a checkpoint, or with out=) write the metrics; returns them."""
    console = console or Console()
    if "metrics" not in cfg:  # `metrics=[]` empties the group: no node at all, so no metrics
        with open_dict(cfg):
            cfg.metrics = {}
    check_sources(cfg)
    device = resolve_device(cfg.device)
    loaded = None
    if cfg.ckpt:  # a translation run is scored on its test set (evaluation/translation_command)
        from ganrun.evaluation.translation_command import evaluate_translation, is_translation

        path = resolve_checkpoint(cfg.ckpt, "ckpt")
        loaded = path, load_checkpoint(path, "ckpt")
        if is_translation(loaded[1]):
            return evaluate_translation(cfg, path, loaded[1], device, console)
    fakes = Fakes(cfg, device, loaded)  # the checkpoint is read once
    if len(fakes.shape) != 3 and cfg.real:
        raise GanrunError(
            f"ckpt={cfg.ckpt} generates 2-D points, which have no image features to compare "
            f"with real={cfg.real}. Drop real= to get the mode metrics of its dataset."
        )
    real, data = real_side(cfg, fakes)
    own = fakes.ckpt is not None and data is not None and hasattr(data, "evaluate")
    samples = fakes.all_samples() if own else None
    values: dict[str, float] = dict(data.evaluate(samples)) if own else {}
    result: dict[str, Any] = {"features": None, "feature_dims": None}
    if real is None:
        result["note"] = "2-D points: FID/KID/IS/PR need images; mode metrics only"
        n_real = 0
    else:
        images = image_metrics(cfg, fakes, real, device, samples)
        n_real = 0 if images is None else images.n_real
        if images is not None:
            values.update(images.values)
            result.update(features=images.features, feature_dims=images.dims)
    if not values:
        raise GanrunError(
            "nothing to evaluate: metrics=[] and this dataset has no metrics of its own. "
            "Pass metrics=[fid] (or any of fid, kid, is, pr)."
        )
    result.update(
        metrics=values,
        fake=fakes.label,
        n_fake=fakes.n,
        real=cfg.real or (real.label if real is not None else "dataset"),
        n_real=n_real,
        ckpt=str(fakes.path) if fakes.ckpt is not None else None,
        step=fakes.ckpt["step"] if fakes.ckpt is not None else None,
    )
    out = default_out(cfg, fakes)
    if out is not None:
        atomic_write(out, (json.dumps(result, indent=2) + "\n").encode())
    print_result(console, result, out)
    return result

"""The one place that calls hydra.utils.instantiate, injecting values known only at run time.

YAML names classes with `_target_`; the data decides the sample shape (and class count),
which is passed to the models here rather than repeated in every model YAML.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from ganrun.augment.discriminator import AugmentedDiscriminator
from ganrun.augment.state import augment_components
from ganrun.errors import GanrunError
from ganrun.losses.base import AdversarialLoss
from ganrun.models.layers import spectral_norm_all
from ganrun.models.vbn import VirtualBatchNormGenerator
from ganrun.tracking.tracker import Backend, run_labels
from ganrun.training.ema import EmaRate
from ganrun.training.methods.base import Method, RunSpec
from ganrun.training.perf import check_perf_keys, optimizer_kwargs
from ganrun.training.schedules import Schedules
from ganrun.training.state import TrainState


def make(node: DictConfig, key: str, **runtime: Any) -> Any:
    """instantiate(node, **runtime), turning config mistakes into one clear GanrunError."""
    try:
        return instantiate(node, _convert_="all", **runtime)
    except MissingMandatoryValue as err:
        missing = getattr(err, "full_key", key)
        raise GanrunError(
            f"{missing} is required here: pass {missing}=... on the command line."
        ) from None
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, GanrunError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        first = str(err).strip().splitlines()
        raise GanrunError(
            f"{key}: could not build {node.get('_target_', '?')}: {' '.join(first[-2:])}. "
            f"Check the keys under {key} (`ganrun train --cfg job` prints them)."
        ) from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GanrunError(
            "trainer.device=cuda but no CUDA GPU is visible. Use trainer.device=auto or "
            "trainer.device=cpu (trainer=cpu), or run on a machine with a GPU."
        )
    return torch.device(name)


def check_trainer(trainer: DictConfig, device: torch.device) -> None:
    """Impossible combinations fail before any work, naming the keys and the fix."""
    if trainer.precision == "fp16" and device.type != "cuda":
        raise GanrunError(
            "trainer.precision=fp16 needs a CUDA device (fp16 autocast with a grad scaler); "
            f"this run is on {device.type}. Use trainer.precision=bf16 or fp32 on CPU."
        )
    for key in ("max_steps", "batch_size", "n_critic", "n_samples", "accumulate"):
        if trainer.get(key, 1) < (0 if key == "max_steps" else 1):
            raise GanrunError(f"trainer.{key}={trainer.get(key, 1)} must be positive.")
    for key in ("log_every", "sample_every", "ckpt_every"):
        if trainer[key] < 0:
            raise GanrunError(f"trainer.{key}={trainer[key]} must be >= 0 (0: only at the end).")
    if trainer.get("keep_last", 0) < 0:  # older checkpoints' configs lack the key
        raise GanrunError(
            f"trainer.keep_last={trainer.keep_last} must be >= 0 (the newest N step_<N>.pt are "
            "kept; 0: all)."
        )
    if trainer.get("eval_every", 0) < 0:
        raise GanrunError(f"trainer.eval_every={trainer.eval_every} must be >= 0 (0: never).")
    if trainer.get("eval_samples", 1) < 1:
        raise GanrunError(f"trainer.eval_samples={trainer.eval_samples} must be positive.")
    if trainer.get("threads", 0) < 0:
        raise GanrunError(f"trainer.threads={trainer.threads} must be >= 0 (0: torch's default).")
    if trainer.get("max_rollbacks", 0) < 0:
        raise GanrunError(
            f"trainer.max_rollbacks={trainer.max_rollbacks} must be >= 0 (0: stop at the first "
            f"non-finite value even with trainer.on_nonfinite=rollback)."
        )
    if not trainer.instance_noise >= 0 or trainer.instance_noise_steps < 0:  # NaN fails too
        raise GanrunError(
            f"trainer.instance_noise={trainer.instance_noise} and trainer.instance_noise_steps="
            f"{trainer.instance_noise_steps} must be >= 0."
        )
    if not trainer.grad_clip >= 0:  # NaN fails too
        raise GanrunError(f"trainer.grad_clip={trainer.grad_clip} must be >= 0 (0: no clipping).")
    EmaRate(trainer.ema_decay, trainer.get("ema_kimg", 0.0), trainer.get("ema_rampup"))
    check_perf_keys(trainer)


def build_data(cfg: DictConfig) -> Any:
    return make(cfg.dataset, "dataset")


def _needs_labels(conditioning: DictConfig | None, num_classes: int | None) -> bool:
    if not conditioning:
        return False
    if not num_classes:
        raise GanrunError(
            "conditioning is set but the dataset has no class labels (ring8, grid25, or an "
            "image_folder without sub-folders). Drop conditioning, or use a labelled dataset "
            "(digits, mnist, fashion_mnist, cifar10, stacked_mnist)."
        )
    return True


def build_generator(
    model: DictConfig,
    data_shape: tuple[int, ...],
    conditioning: DictConfig | None = None,
    num_classes: int | None = None,
) -> torch.nn.Module:
    """G from the model config; wrapped for class labels when `conditioning` is set."""
    shape = tuple(data_shape)
    make_base = functools.partial(make, model.generator, "model.generator", data_shape=shape)
    virtual_bn = model.get("virtual_bn", False)
    if _needs_labels(conditioning, num_classes):
        if virtual_bn:
            raise GanrunError(
                "model.virtual_bn=true and conditioning both replace G's BatchNorm; pick one "
                "(model.virtual_bn=false, or drop conditioning)."
            )
        wrapper = make(conditioning.generator, "conditioning.generator")
        G = wrapper(make_base=make_base, num_classes=num_classes, z_dim=model.z_dim)
    elif virtual_bn:
        G = VirtualBatchNormGenerator(make_base, model.z_dim)
    else:
        G = make_base()
    return spectral_norm_all(G) if model.get("sn_g", False) else G


def _plain_discriminator(model: DictConfig, shape: tuple[int, ...], **kw: Any) -> torch.nn.Module:
    """model.discriminator (kw: e.g. num_classes for a natively conditional D), with spectral
    norm on every layer when model.sn_d."""
    D = make(model.discriminator, "model.discriminator", data_shape=shape, **kw)
    return spectral_norm_all(D) if model.get("sn_d", False) else D


def build_discriminator(
    cfg: DictConfig, data_shape: tuple[int, ...], num_classes: int | None = None
) -> torch.nn.Module:
    """D, with spectral norm when model.sn_d, label-conditioned when `conditioning` is set,
    behind the input augmentation when one is set."""
    shape = tuple(data_shape)
    make_base = functools.partial(_plain_discriminator, cfg.model, shape)
    conditioning = cfg.get("conditioning")
    if _needs_labels(conditioning, num_classes):
        wrapper = make(conditioning.discriminator, "conditioning.discriminator")
        D = wrapper(make_base=make_base, num_classes=num_classes, data_shape=shape)
    else:
        D = make_base()
    if cfg.get("augment"):
        if hasattr(D, "aux_loss"):
            raise GanrunError(
                "augment and conditioning=acgan together are not supported (the auxiliary "
                "classifier would see un-augmented inputs). Drop one of them."
            )
        D = AugmentedDiscriminator(D, make(cfg.augment, "augment"))
    return D


def build_loss(cfg: DictConfig) -> AdversarialLoss:
    return make(cfg.loss, "loss")


def build_optimizer(
    cfg: DictConfig, key: str, net: torch.nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """optimizer.<key> on net's parameters (fused on CUDA, see optimizer_kwargs)."""
    factory = make(cfg.optimizer[key], f"optimizer.{key}")
    fused = cfg.trainer.get("fused_optimizer", True)
    fused_cpu = cfg.trainer.get("fused_optimizer_cpu", False)
    return factory(net.parameters(), **optimizer_kwargs(factory, device, fused, fused_cpu))


def build_method(
    cfg: DictConfig,
    data_shape: tuple[int, ...],
    device: torch.device,
    num_classes: int | None = None,
    world_size: int = 1,
    source_shape: tuple[int, ...] | None = None,
    data: Any = None,
) -> Method:
    """The `method` node (a `_partial_` class) called with the run's facts (translation
    data: also its source shape and the dataset, see RunSpec)."""
    factory = make(cfg.method, "method")
    source = None if source_shape is None else tuple(source_shape)
    return factory(RunSpec(cfg, tuple(data_shape), num_classes, device, world_size, source, data))


def build_state(
    cfg: DictConfig,
    data_shape: tuple[int, ...],
    device: torch.device,
    num_classes: int | None = None,
    method: Method | None = None,
) -> TrainState:
    """The method's players, built from `seed` on `device`; the method (built here when not
    given) is the state's "method" component."""
    method = method or build_method(cfg, data_shape, device, num_classes)
    torch.manual_seed(cfg.seed)
    players = method.build_players()
    # ADA's p and statistics: checkpointed beside the plain D (absent for stateless augments)
    return TrainState(players=players, components={"method": method, **augment_components(players)})


def build_schedules(cfg: DictConfig) -> Schedules:
    """The `schedule` node: entry name -> scheduled parameter (none: schedule=constant)."""
    node = cfg.get("schedule") or {}
    return Schedules({name: make(entry, f"schedule.{name}") for name, entry in node.items()})


def build_backend(
    cfg: DictConfig,
    run_dir: Path,
    hydra_cfg: DictConfig | None,
    start_step: int,
    continuing: bool,
) -> Backend | None:
    """The `logger=` backend, or None for logger=none (and checkpoints from before backends).

    Call it on one process only (rank 0 under DDP): a backend is one run in the outside world.
    `continuing` (a resume in the same run folder) lets it pick up the run it already has.
    """
    if not cfg.logger.get("_target_"):
        return None
    factory = make(cfg.logger, "logger")
    return factory(
        run_dir=run_dir,
        config=OmegaConf.to_container(cfg),
        labels=run_labels(cfg, hydra_cfg),
        start_step=start_step,
        continuing=continuing,
    )

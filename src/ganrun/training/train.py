"""train(cfg): build everything from the config, fit, write the run folder, summarise."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from ganrun.build import (
    build_backend,
    build_data,
    build_loss,
    build_state,
    check_trainer,
    resolve_device,
)
from ganrun.data.base import check_batch_size
from ganrun.errors import GanrunError
from ganrun.evaluation.during_training import image_evaluator, keep_best
from ganrun.sampling.generate import class_labels, generate
from ganrun.sampling.images import save_samples, to_uint8
from ganrun.tracking.tracker import Tracker, log, setup_logging, teardown_logging, truncate_metrics
from ganrun.training import distributed
from ganrun.training.loop import LoopConfig, fit
from ganrun.training.perf import accelerate, restore_backend_flags, set_backend_flags
from ganrun.training.resume import resumed_config
from ganrun.training.state import (
    TrainState,
    checkpoint_payload,
    isolated_rng,
    load_checkpoint,
    resolve_checkpoint,
    run_folder_of,
    save_checkpoint,
    set_rng_state,
)

IMAGE_METRICS = ("eval/fid", "eval/kid", "eval/is", "eval/precision", "eval/recall")
if TYPE_CHECKING:  # the metrics stack is imported only by runs that evaluate images
    from ganrun.evaluation.image_evaluator import ImageEvaluator

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_factory(device: torch.device, precision: str):
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=dtype)


def prepare_run_dir(run_dir: Path, continuing: bool, create: bool = True) -> None:
    """A new run must not land on an old one; only a resume may reuse a run folder.

    create=False only checks (DDP ranks > 0: they fail with rank 0 but write nothing)."""
    # a checkpoints/ folder with no checkpoint in it (a run that failed before its first
    # save) holds nothing to overwrite or resume
    has_ckpt = any((run_dir / "checkpoints").glob("*.pt"))
    taken = (["checkpoints"] if has_ckpt else []) + (
        ["metrics.jsonl"] if (run_dir / "metrics.jsonl").exists() else []
    )
    if taken and not continuing:
        fix = f", or continue that run with resume={run_dir}" if has_ckpt else ""
        raise GanrunError(
            f"hydra.run.dir={run_dir} already holds a run ({', '.join(taken)}); refusing to "
            f"overwrite it. Pick a new hydra.run.dir{fix}."
        )
    if create:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)


def write_config(
    run_dir: Path,
    cfg: DictConfig,
    overrides: list[str],
    hydra_cfg: DictConfig | None,
    continuing: bool,
) -> None:
    """.hydra/ as Hydra would write it; a resumed run appends its overrides to the original ones."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    previous = hydra_dir / "overrides.yaml"
    if continuing and previous.is_file():
        overrides = list(OmegaConf.load(previous)) + list(overrides)
    previous.write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    if hydra_cfg is not None:
        (hydra_dir / "hydra.yaml").write_text(
            OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg}))
        )


def make_evaluator(
    data: Any,
    z_dim: int,
    n: int,
    seed: int,
    device: torch.device,
    num_classes: int | None = None,
    images: ImageEvaluator | None = None,
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """G -> data.evaluate(G(z)) and the image metrics (`images`), on `n` fixed latents.

    The noise comes from a dedicated torch.Generator seeded with `seed`, never from the
    global RNG, so evaluating does not change the run (resume stays bit-exact).
    """
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    labels = None if num_classes is None else class_labels(n, num_classes).to(device)

    def evaluate(G: torch.nn.Module) -> dict[str, float]:
        with isolated_rng():
            samples = generate(G, z, 1024, labels)
            values = data.evaluate(samples) if hasattr(data, "evaluate") else {}
            if images is not None:
                values.update(images(to_uint8(samples).split(1024)).values)
        return values

    return evaluate


def summary_table(
    run_dir: Path,
    state: TrainState,
    wall: float,
    last: dict[str, float],
    features: str | None = None,
) -> Table:
    """The end-of-run summary; image metrics name the extractor that produced them."""
    table = Table(title="ganrun train", show_header=False)
    table.add_row("run folder", str(run_dir))
    table.add_row("steps", str(state.step))
    table.add_row("wall time", f"{wall:.1f} s")
    for key in ("loss/d", "loss/g", "perf/img_per_s", "eval/modes", "eval/hq_pct"):
        if key in last:
            table.add_row(key, f"{last[key]:.4g}")
    for key in IMAGE_METRICS:
        if key in last:
            table.add_row(f"{key} ({features})", f"{last[key]:.4g}")
    if state.best is not None:
        best = state.best
        table.add_row("best.pt", f"{best['metric']} {best['value']:.4g} at step {best['step']}")
    table.add_row("checkpoint", str(run_dir / "checkpoints" / "last.pt"))
    return table


def train(
    cfg: DictConfig,
    run_dir: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    hydra_cfg: DictConfig | None = None,
    console: Console | None = None,
) -> dict[str, float]:
    """Train the GAN `cfg` describes into `run_dir`; returns the last logged metrics.

    In an initialised process group (torchrun: the CLI opens it) every rank trains its share
    with DDP and only rank 0 writes; see ganrun.training.distributed.
    """
    start = time.perf_counter()
    ranks = distributed.context()
    console = console or Console(quiet=not ranks.is_main)
    run_dir = Path(run_dir).resolve()
    # plain values from here on (enums as strings, interpolations resolved)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    ckpt, continuing = None, False
    if cfg.resume:
        ckpt_path = resolve_checkpoint(cfg.resume, "resume")
        ckpt = load_checkpoint(ckpt_path, "resume")
        cfg = resumed_config(ckpt["config"], cfg, overrides)
        continuing = run_folder_of(ckpt_path) == run_dir

    trainer = cfg.trainer
    device = distributed.rank_device(resolve_device(trainer.device), ranks)
    check_trainer(trainer, device)
    distributed.check(trainer, device, ranks)
    data = build_data(cfg)
    state = build_state(cfg, data.shape, device, data.num_classes)
    conditional = bool(cfg.get("conditioning"))
    loss = build_loss(cfg)
    if isinstance(data, Sized):  # finite data: fail before the run folder is touched
        check_batch_size(len(data), trainer.batch_size, ranks.world)
    if ckpt is not None:
        state.load_state_dict(ckpt)
        if state.step > trainer.max_steps:
            raise GanrunError(
                f"resume={cfg.resume} is at step {state.step}, past trainer.max_steps="
                f"{trainer.max_steps}. Pass a larger trainer.max_steps to train further."
            )
    # before the run folder: fails early; rank 0 alone evaluates (DDP)
    with isolated_rng():  # building extractors draws random init weights before loading
        images = image_evaluator(cfg, data, device) if ranks.is_main else None

    prepare_run_dir(run_dir, continuing, create=ranks.is_main)  # only rank 0 writes
    handlers = setup_logging(run_dir, console) if ranks.is_main else distributed.silence_logging()
    threads = torch.get_num_threads()  # restored at the end: train() leaves no global change
    backend, exit_code = None, 0
    if trainer.threads:
        torch.set_num_threads(trainer.threads)
    backend_flags = set_backend_flags(device, trainer)  # TF32, cuDNN autotuning; restored below
    try:
        if ranks.is_main:
            write_config(run_dir, cfg, overrides, hydra_cfg, continuing)
            if continuing:
                truncate_metrics(run_dir / "metrics.jsonl", state.step)
            else:
                save_samples(data.preview(trainer.n_samples), run_dir / "reals.png")
        log.info(
            "run folder %s (%s, step %d -> %d)", run_dir, device, state.step, trainer.max_steps
        )
        # the one place a backend (W&B) is made: under DDP, on rank 0 only
        if ranks.is_main:
            backend = build_backend(cfg, run_dir, hydra_cfg, state.step, continuing)
        config = OmegaConf.to_container(cfg)
        data_facts = {"shape": list(data.shape), "num_classes": data.num_classes}

        def checkpoint(periodic: bool) -> None:
            if not ranks.is_main:
                return
            folder = run_dir / "checkpoints"
            paths = ([folder / f"step_{state.step:07d}.pt"] if periodic else []) + [
                folder / "last.pt"
            ]
            save_checkpoint(checkpoint_payload(state, config, data_facts), paths)

        def save_best() -> None:
            best = run_dir / "checkpoints" / "best.pt"
            save_checkpoint(checkpoint_payload(state, config, data_facts), [best])

        z_dim = cfg.model.z_dim
        fixed_z = torch.randn(
            trainer.n_samples, z_dim, generator=torch.Generator().manual_seed(cfg.seed)
        )
        classes = data.num_classes if conditional else None
        fixed_labels = None if classes is None else class_labels(trainer.n_samples, classes)
        batches = distributed.rank_batches(
            data, trainer.batch_size, cfg.seed, state.step * trainer.n_critic, device, ranks
        )
        batches = accelerate(state, batches, trainer, data.shape, list(loss.penalties))
        if ckpt is not None:
            set_rng_state(ckpt["rng"])
        distributed.seed_rank(cfg.seed, state.step, ranks)  # W > 1: noise differs per rank
        distributed.wrap_models(state, device, ranks, trainer.get("sync_batchnorm", False))
        # keys a checkpoint from an older version lacks keep their LoopConfig defaults
        loop_cfg = LoopConfig(
            **{k: trainer[k] for k in LoopConfig.__dataclass_fields__ if k in trainer},
            conditional=conditional,
            world_size=ranks.world,
        )
        evaluate = None
        if (
            loop_cfg.eval_every > 0
            and (hasattr(data, "evaluate") or images is not None)
            and ranks.is_main
        ):
            evaluate = make_evaluator(
                data, z_dim, trainer.eval_samples, cfg.seed, device, classes, images
            )
        if images is not None:
            ref = images.reference
            log.info(
                "eval/* image metrics: %s features (%d-d), reference of %d real images (%s)",
                images.extractor.name,
                images.dims,
                ref.n,
                ref.path or "not cached",
            )
            evaluate = keep_best(evaluate, state, save_best, images.extractor.name)
        last = fit(
            state,
            loss,
            batches,
            loop_cfg,
            z_dim,
            fixed_z.to(device),
            autocast_factory(device, trainer.precision),
            Tracker(run_dir, console, backend) if ranks.is_main else distributed.SilentTracker(),
            run_dir / "samples" if ranks.is_main else None,
            checkpoint,
            evaluate,
            None if fixed_labels is None else fixed_labels.to(device),
        )
        distributed.barrier()  # rank 0 has written the last checkpoint
        features = None if images is None else images.extractor.name
        console.print(summary_table(run_dir, state, time.perf_counter() - start, last, features))
        return last
    except BaseException:
        exit_code = 1  # the backend's run is marked failed (a sweep's other jobs go on)
        raise
    finally:
        if backend is not None:
            backend.close(exit_code)
        restore_backend_flags(backend_flags)
        torch.set_num_threads(threads)
        teardown_logging(handlers)

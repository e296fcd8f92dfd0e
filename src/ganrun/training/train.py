"""train(cfg): the composition root. Build everything from the config, fit, summarise.

The data decide shapes and classes; the method builds its players; the schedules, the EMA
rate and the evaluator are attached; the loop (fit) runs the cadences. Only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator, Sized
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from ganrun.build import (
    build_backend,
    build_data,
    build_method,
    build_schedules,
    build_state,
    check_trainer,
    resolve_device,
)
from ganrun.data.base import check_batch_size
from ganrun.data.translation import Translating
from ganrun.errors import GanrunError, RunInterrupted
from ganrun.evaluation.during_training import image_evaluator, keep_best, make_evaluator
from ganrun.sampling.images import save_samples
from ganrun.tracking.run_visuals import RunVisuals
from ganrun.tracking.summary import summary_table
from ganrun.tracking.tracker import Tracker, log, setup_logging, teardown_logging, truncate_metrics
from ganrun.training import distributed
from ganrun.training.checkpoint import (
    checkpoint_payload,
    load_checkpoint,
    prune_checkpoints,
    resolve_checkpoint,
    run_folder_of,
    save_checkpoint,
)
from ganrun.training.dry_run import dry_step
from ganrun.training.ema import EmaRate
from ganrun.training.loop import LoopConfig, fit
from ganrun.training.nonfinite import NonFiniteError, NonFiniteGuard
from ganrun.training.perf import (
    accelerate,
    keep_freed_memory,
    layout_batches,
    restore_backend_flags,
    set_backend_flags,
)
from ganrun.training.resume import resumed_config
from ganrun.training.rng import isolated_rng, set_rng_state
from ganrun.training.rollback import Rollbacks, roll_back
from ganrun.training.run_folder import prepare_run_dir, write_config
from ganrun.training.run_lock import RunLock
from ganrun.training.schedules import ScheduledRun
from ganrun.training.signals import StopSignals


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
    source_shape = getattr(data, "source_shape", None)  # translation data only
    method = build_method(
        cfg, data.shape, device, data.num_classes, ranks.world, source_shape, data
    )
    state = build_state(cfg, data.shape, device, data.num_classes, method)
    schedules = build_schedules(cfg)
    ema = EmaRate(trainer.ema_decay, trainer.get("ema_kimg", 0.0), trainer.get("ema_rampup"))
    state.components["schedules"] = schedules
    if isinstance(data, Sized):  # finite data: fail before the run folder is touched
        check_batch_size(len(data), trainer.batch_size, ranks.world)
    dry_step(cfg, data, device)
    if ckpt is not None:
        state.load_state_dict(ckpt)
        if state.step > trainer.max_steps:
            raise GanrunError(
                f"resume={cfg.resume} is at step {state.step}, past trainer.max_steps="
                f"{trainer.max_steps}. Pass a larger trainer.max_steps to train further."
            )
    schedules.bind(ScheduledRun(state, method, ema))  # bases: the config's, or the checkpoint's
    # before the run folder: fails early; rank 0 alone evaluates (DDP)
    with isolated_rng():  # building extractors draws random init weights before loading
        images = image_evaluator(cfg, data, device) if ranks.is_main else None

    # one run per folder, held until the end (rank 0 writes; the other ranks write nothing)
    with RunLock(run_dir) if ranks.is_main else contextlib.nullcontext() as lock:
        stale = prepare_run_dir(run_dir, continuing, create=ranks.is_main)  # rank 0 writes
        if lock is not None:
            lock.own()
        handlers = (
            setup_logging(run_dir, console) if ranks.is_main else distributed.silence_logging()
        )
        threads = torch.get_num_threads()  # restored at the end: train() leaves no global change
        backend, exit_code = None, 0
        if trainer.threads:
            torch.set_num_threads(trainer.threads)
        backend_flags = set_backend_flags(device, trainer)  # TF32, cuDNN autotuning; restored below
        if trainer.get("keep_freed_memory", True):  # process-wide, kept: see keep_freed_memory
            keep_freed_memory()
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
            for path in stale:
                log.info("removed %s, a temporary file of a run that was killed", path)
            # the one place a backend (W&B) is made: under DDP, on rank 0 only
            if ranks.is_main:
                backend = build_backend(cfg, run_dir, hydra_cfg, state.step, continuing)
            config = OmegaConf.to_container(cfg)
            data_facts = {"shape": list(data.shape), "num_classes": data.num_classes}
            if isinstance(method, Translating):  # translate / eval rebuild the translator
                data_facts["source_shape"] = list(source_shape or data.shape)

            def save(paths: list[Path]) -> None:
                save_checkpoint(checkpoint_payload(state, config, data_facts), paths)

            guard = NonFiniteGuard(trainer.get("on_nonfinite", "stop"))
            rollbacks = Rollbacks(trainer.get("max_rollbacks", 3))
            for player in state.players.values():
                player.skip_nonfinite = guard.policy == "skip"

            def checkpoint(periodic: bool) -> None:
                folder = run_dir / "checkpoints"
                if ranks.is_main:
                    periodic_path = [folder / f"step_{state.step:07d}.pt"] if periodic else []
                    save(periodic_path + [folder / "last.pt"])
                    if periodic:
                        prune_checkpoints(folder, trainer.get("keep_last", 0))
                guard.last_good = str(folder / "last.pt")  # every rank reads rank 0's on rollback
                rollbacks.saved()

            def batches_from(step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
                start = step * method.batches_per_step  # the stream is a function of (seed, index)
                return distributed.rank_batches(
                    data, trainer.batch_size, cfg.seed, start, device, ranks
                )

            fixed_inputs = method.sample_inputs(trainer.n_samples, cfg.seed)
            batches = accelerate(
                state, batches_from(state.step), trainer, data.shape, list(method.penalties())
            )
            if ckpt is not None:
                set_rng_state(ckpt["rng"])
            distributed.seed_rank(cfg.seed, state.step, ranks)  # W > 1: noise differs per rank
            distributed.wrap_models(state, device, ranks, trainer.get("sync_batchnorm", False))
            # keys a checkpoint from an older version lacks keep their LoopConfig defaults
            loop_cfg = LoopConfig(
                **{k: trainer[k] for k in LoopConfig.__dataclass_fields__ if k in trainer}
            )
            evaluate = None
            if (
                loop_cfg.eval_every > 0
                and (hasattr(data, "evaluate") or images is not None or hasattr(data, "test_set"))
                and ranks.is_main
            ):
                evaluate = make_evaluator(data, method, trainer.eval_samples, cfg.seed, images)
            if images is not None:
                ref = images.reference
                log.info(
                    "eval/* image metrics: %s features (%d-d), reference of %d real images (%s)",
                    images.extractor.name,
                    images.dims,
                    ref.n,
                    ref.path or "not cached",
                )
                best = run_dir / "checkpoints" / "best.pt"
                evaluate = keep_best(evaluate, state, lambda: save([best]), images.extractor.name)
            tracker = (
                Tracker(run_dir, console, backend) if ranks.is_main else distributed.SilentTracker()
            )
            visuals = RunVisuals(  # plots and time-lapse: rank 0 only, off the training numbers
                run_dir, trainer.get("plots", False), trainer.get("timelapse", False), backend
            )
            on_sample = visuals.on_sample if ranks.is_main and visuals.plots else None
            start_state = io.BytesIO()  # rollback target before the first checkpoint
            if guard.policy == "rollback":
                torch.save(checkpoint_payload(state, config, data_facts), start_state)
            with StopSignals() as stop:
                while True:
                    try:
                        last = fit(
                            state,
                            method,
                            batches,
                            loop_cfg,
                            tracker,
                            run_dir / "samples" if ranks.is_main else None,
                            checkpoint,
                            evaluate,
                            fixed_inputs,
                            schedules,
                            ema,
                            guard,
                            stop,
                            on_sample,
                        )
                        break
                    except NonFiniteError as err:
                        if guard.policy != "rollback" or rollbacks.spent:
                            raise
                        source = guard.last_good or "the start of the run"
                        ckpt = (
                            load_checkpoint(Path(source), "rollback")
                            if guard.last_good
                            else torch.load(io.BytesIO(start_state.getvalue()), weights_only=True)
                        )
                        factor = rollbacks.take()
                        roll_back(state, schedules, ckpt, factor)
                        distributed.seed_rank(cfg.seed, state.step, ranks)
                        log.warning(
                            "%s Rolled back to %s (step %d), learning rates x%g (rollback %d of %d).",
                            err,
                            source,
                            state.step,
                            factor,
                            rollbacks.count,
                            rollbacks.limit,
                        )
                        if ranks.is_main:
                            truncate_metrics(run_dir / "metrics.jsonl", state.step)
                        batches = layout_batches(
                            batches_from(state.step), state, trainer, data.shape
                        )
                    except RunInterrupted:
                        log.warning("run interrupted at step %d; last.pt saved", state.step)
                        stop.chain()  # submitit's checkpoint-and-requeue, when it was installed
                        raise
            distributed.barrier()  # rank 0 has written the last checkpoint
            if ranks.is_main and visuals.enabled:
                visuals.finish(state.step)
            features = None if images is None else images.extractor.name
            console.print(
                summary_table(run_dir, state, time.perf_counter() - start, last, features)
            )
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

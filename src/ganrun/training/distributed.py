"""Training on several processes with DistributedDataParallel (torchrun, or trainer.devices=N).

torchrun starts one process per device and hands each its place through the environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). Everything here is a no-op for a single
process, so a plain `ganrun train` runs exactly as before (bit for bit).

The scheme, and why:

- Data: with W ranks and `trainer.batch_size` B per rank, global batch k is the batch of W*B
  one process would draw (a pure function of (seed, k)) and rank r keeps rows [rB, (r+1)B).
  The ranks' batches together are exactly the 1-process batch of W*B, and resume needs no
  loader state.
- Models are initialised from the run seed on every rank (DDP also broadcasts rank 0's weights
  when it wraps them); after that each rank reseeds its global RNG from (seed, rank, step), so
  latents, penalty interpolates and augmentations differ per rank.
- G and D are wrapped in DistributedDataParallel, so gradients are averaged by PyTorch's own
  reducer: mean-over-batch losses then give the update of one process on W*B samples
  (tests/test_distributed.py checks it, gradient penalty included: its double backward runs
  through the DDP-wrapped D, so the penalty's gradients are averaged like the rest). The
  generator step calls D's plain module (methods/gan.py g_step): D is frozen there, with
  nothing to average. With trainer.accumulate=k, gradients are synchronised on the last
  micro-batch of each phase only (DDP's no_sync on the others).
- Only rank 0 writes (run folder, .hydra/, train.log, metrics.jsonl, samples, checkpoints);
  no collective runs inside rank-0-only code, so the other ranks never wait on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ganrun.data.base import Batch, mixed_seed
from ganrun.errors import GanrunError
from ganrun.tracking.tracker import log

WAIT = timedelta(hours=1)  # the longest a rank waits for the others in one collective


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes training together."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # index of this process on its machine: picks its GPU

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run folder; the others only compute."""
        return self.rank == 0


def launched_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def context() -> Ranks:
    """The ranks of the current process group, or a single process when there is none."""
    if not active():
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def session() -> Iterator[Ranks]:
    """The process group for the duration of the block when launched by torchrun.

    Backends: gloo for CPU tensors, plus nccl for CUDA tensors when a GPU is visible (PyTorch
    routes each collective by its tensors' device). Destroyed on the way out, also on failure.
    A group the caller initialised already is used as it is and left open.
    """
    if launched_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        yield context()
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)  # NCCL's communicator uses the current device
    # rank 0 alone evaluates and writes checkpoints while the others wait in their next
    # collective: allow that an hour (NCCL's default is 10 minutes)
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=WAIT)
    try:
        yield context()
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------ launch and run folder


def launch_devices(cfg: Any, args: Sequence[str]) -> int:
    """How many worker processes `ganrun train` must start itself (trainer.devices), or 0.

    0 under torchrun (torchrun started the workers) or when trainer.devices=1.
    """
    if cfg is None:  # a sweep or a flag: the config was not composed up front
        if "-m" in args and any(a.startswith("trainer.devices=") for a in args):
            raise GanrunError(
                "trainer.devices with a sweep (-m) is not supported: each job would start "
                "its own workers. Run one `ganrun train trainer.devices=N ...` per configuration."
            )
        return 0
    devices = int(cfg.trainer.get("devices", 1))
    if devices < 1:
        raise GanrunError(f"trainer.devices={devices} must be at least 1.")
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "0"))
    if local:  # launched by torchrun: its --nproc_per_node decides
        if devices not in (1, local):
            raise GanrunError(
                f"trainer.devices={devices} but torchrun started {local} processes on this "
                f"machine (--nproc_per_node). Under torchrun leave trainer.devices=1, or match it."
            )
        return 0
    return devices if devices > 1 else 0


def relaunch(devices: int, argv: Sequence[str]) -> int:
    """Run `python -m ganrun <argv>` as `devices` workers under torchrun's elastic launcher
    (single machine, a free port); returns the exit code of the first worker that failed."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(["--standalone", f"--nproc_per_node={devices}", "-m", "ganrun", *argv]))
    except ChildFailedError as err:
        _, failure = err.get_first_failure()
        return failure.exitcode or 1
    return 0


def agreed_run_dir(conf_dir: str, task: str, args: list[str]) -> list[str]:
    """`args` plus rank 0's `hydra.run.dir`, so every rank uses the same run folder.

    The default folder holds ${now:...}: each rank would resolve its own time. Rank 0
    resolves it and broadcasts it; an explicit hydra.run.dir is kept as given.
    """
    if not active():
        return args
    if "-m" in args or "--multirun" in args:
        raise GanrunError(
            "a sweep (-m) cannot run under torchrun: every job would need its own process "
            "group. Launch one torchrun per configuration."
        )
    if any(a.startswith("hydra.run.dir=") for a in args):
        return args
    chosen: list[str | None] = [None]
    if dist.get_rank() == 0:
        chosen[0] = _resolved_run_dir(conf_dir, task, args)
    dist.broadcast_object_list(chosen, src=0)
    return [*args, f"hydra.run.dir='{chosen[0]}'"]


def _resolved_run_dir(conf_dir: str, task: str, args: Sequence[str]) -> str:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [a for a in args if not a.startswith("-")]
    with initialize_config_dir(conf_dir, version_base="1.3", job_name=task):
        cfg = compose(task, overrides=overrides, return_hydra_config=True)
    return str(OmegaConf.select(cfg, "hydra.run.dir"))


# ------------------------------------------------------------------ training pieces


def check(trainer: Any, device: torch.device, ranks: Ranks) -> None:
    """Distributed settings that cannot work, before any work is done."""
    if ranks.world == 1:
        return
    if trainer.get("sync_batchnorm", False) and device.type != "cuda":
        raise GanrunError(
            f"trainer.sync_batchnorm=true needs CUDA (PyTorch's SyncBatchNorm runs on GPUs); "
            f"this run is on {device.type}. Set trainer.sync_batchnorm=false (each rank then "
            f"normalises over its own batch) or train on GPUs."
        )


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """cuda -> cuda:LOCAL_RANK (one GPU per process); cpu stays cpu."""
    if device.type != "cuda" or ranks.world == 1:
        return device
    if ranks.local_rank >= torch.cuda.device_count():
        raise GanrunError(
            f"LOCAL_RANK={ranks.local_rank} but only {torch.cuda.device_count()} GPU(s) are "
            f"visible. Start at most that many processes per machine (--nproc_per_node or "
            f"trainer.devices)."
        )
    return torch.device("cuda", ranks.local_rank)


def rank_batches(
    data: Any, batch_size: int, seed: int, start: int, device: torch.device, ranks: Ranks
) -> Iterator[Batch]:
    """This rank's share of each global batch (see the module docstring).

    Every rank draws the global batch of world * batch_size and keeps its rows: exact for any
    dataset. The in-memory datasets gather those rows on the device (cheap); image_folder
    decodes the whole global batch on each rank.
    """
    batches = data.batches(batch_size * ranks.world, seed, start, device)
    return batches if ranks.world == 1 else shard(batches, ranks.rank, batch_size)


def shard(batches: Iterator[Batch], rank: int, batch_size: int) -> Iterator[Batch]:
    """Rows [rank * batch_size, (rank + 1) * batch_size) of every batch."""
    lo, hi = rank * batch_size, (rank + 1) * batch_size
    for x, y in batches:
        yield x[lo:hi], (None if y is None else y[lo:hi])


def seed_rank(seed: int, step: int, ranks: Ranks) -> None:
    """W > 1: this rank's global torch RNG from (seed, rank, step) when training starts or
    resumes, so the ranks draw different latents and noise. One process keeps its stream."""
    if ranks.world > 1:
        torch.manual_seed(mixed_seed(mixed_seed(seed, ranks.rank), step))


def wrap_models(state: Any, device: torch.device, ranks: Ranks, sync_batchnorm: bool) -> None:
    """Every player's network in DistributedDataParallel (after any checkpoint is loaded).

    SyncBatchNorm conversion keeps the same parameter objects, so the optimizers built on
    them stay valid, and the same state_dict keys, so checkpoints load into plain models.
    DDP broadcasts rank 0's parameters and buffers when it wraps, and the buffers before every
    forward (BatchNorm running statistics follow rank 0; with SyncBatchNorm they are global).
    """
    if ranks.world == 1:
        return
    ids = [device.index] if device.type == "cuda" else None
    for player in state.players.values():
        model = player.net
        if sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        player.net = DistributedDataParallel(model, device_ids=ids)


def local_module(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (itself otherwise): calls on it skip DDP's reducer."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def mean_over_ranks(logs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Scalar logs averaged over the ranks (one all-reduce); unchanged for one process.

    Called by every rank on the same (log) steps, so the collective always completes.
    """
    if not active() or not logs:
        return logs
    values = torch.stack([v.detach().float().reshape(()) for v in logs.values()])
    dist.all_reduce(values)
    return dict(zip(logs, (values / dist.get_world_size()).unbind()))


def barrier() -> None:
    """Every rank waits here (the end of training: rank 0 has written its last checkpoint)."""
    if active():
        dist.barrier()


class SilentTracker:
    """The tracker of ranks other than 0: same calls, nothing written or shown."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def start(self, first_step: int, total: int) -> None: ...
    def advance(self, step: int) -> None: ...
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def log_image(self, name: str, path: Path, step: int) -> None: ...
    def close(self) -> None: ...


def silence_logging() -> list[logging.Handler]:
    """Ranks other than 0 print nothing through the ganrun logger (no duplicated lines)."""
    handler = logging.NullHandler()
    log.addHandler(handler)
    log.propagate = False
    return [handler]


def any_rank(flag: bool) -> bool:
    """True when `flag` is true on any rank (one all-reduce under DDP; no collective otherwise).

    Called by every rank on every step, so the collective always completes."""
    if not active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())

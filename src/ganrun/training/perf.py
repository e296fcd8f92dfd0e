"""Single-device speed: CUDA backend flags, channels_last, GEMM convolutions, fused optimizers,
torch.compile.

These settings change how fast a run goes, not what it computes (up to floating-point
rounding), so they live apart from the models, losses and loop. train() and
scripts/bench_speed.py both go through `set_backend_flags` and `accelerate`, so the
benchmark measures the path a real run takes.
"""

from __future__ import annotations

import ctypes
import inspect
import logging
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.utils import parametrize

from ganrun.errors import GanrunError
from ganrun.training.gemm_conv import gemm_convolutions
from ganrun.training.state import TrainState

log = logging.getLogger("ganrun")

Batch = tuple[torch.Tensor, torch.Tensor | None]
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_perf_keys(trainer: DictConfig) -> None:
    """trainer.compile_mode / compile_backend name something torch.compile knows."""
    mode = trainer.get("compile_mode", "default")
    if mode not in COMPILE_MODES:
        raise GanrunError(
            f"trainer.compile_mode={mode} is not a torch.compile mode; use one of "
            f"{', '.join(COMPILE_MODES)}."
        )
    pixels = trainer.get("gemm_conv_pixels", 0)
    if pixels < 0:
        raise GanrunError(
            f"trainer.gemm_conv_pixels={pixels} must be >= 0: the most matmul rows per image "
            f"(output pixels) a convolution may have to run as one matmul; 0 turns it off, "
            f"trainer=fast uses 16."
        )
    backend = trainer.get("compile_backend", "inductor")
    if trainer.get("compile", False):
        known = torch.compiler.list_backends(exclude_tags=())
        if backend not in known:
            raise GanrunError(
                f"trainer.compile_backend={backend} is not a torch.compile backend; use one of "
                f"{', '.join(sorted(known))} (inductor generates kernels; aot_eager needs no "
                f"compiler)."
            )
        if mode != "default" and backend != "inductor":
            raise GanrunError(
                f"trainer.compile_mode={mode} only applies to trainer.compile_backend=inductor "
                f"(got {backend}). Set trainer.compile_mode=default or use inductor."
            )


# ------------------------------------------------------------------------ backend flags


@dataclass(frozen=True)
class BackendFlags:
    matmul_precision: str  # torch.get_float32_matmul_precision(): "high" allows TF32
    cudnn_tf32: bool  # TF32 in cuDNN convolutions
    cudnn_benchmark: bool  # cuDNN autotunes each conv shape once

    @staticmethod
    def current() -> BackendFlags:
        return BackendFlags(
            torch.get_float32_matmul_precision(),
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        )

    def apply(self) -> None:
        torch.set_float32_matmul_precision(self.matmul_precision)
        torch.backends.cudnn.allow_tf32 = self.cudnn_tf32
        torch.backends.cudnn.benchmark = self.cudnn_benchmark


def set_backend_flags(device: torch.device, trainer: DictConfig) -> BackendFlags | None:
    """TF32 matmuls and convolutions, cuDNN autotuning, for a CUDA run; returns the previous
    flags for restore_backend_flags (these are process-wide: train() leaves no global change).
    Nothing changes on other devices (returns None)."""
    if device.type != "cuda":
        return None
    previous = BackendFlags.current()
    tf32 = trainer.get("tf32", True)
    BackendFlags("high" if tf32 else "highest", tf32, trainer.get("cudnn_benchmark", True)).apply()
    return previous


def restore_backend_flags(previous: BackendFlags | None) -> None:
    if previous is not None:
        previous.apply()


# ---------------------------------------------------------------------- CPU allocator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEEP_BYTES = 1 << 30  # blocks under 1 GiB come from the heap; up to 1 GiB free stays in it
MMAP_MAX_OLD_GLIBC = 32 << 20  # glibc < 2.26 refuses an mmap threshold above 32 MiB


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep the memory a step frees for the next step; returns whether it did.

    By default glibc serves large blocks (a step's activations and gradients, MBs each) with
    mmap and gives them back with munmap when freed, so every step page-faults fresh zeroed
    pages again: about 27,000 page faults and 80 ms of kernel time per DCGAN-64 batch-64 step
    on a 2-core CPU. With the thresholds raised, freed blocks stay in the heap and are reused.
    Nothing computed changes. It is process-wide and stays set after train() (it only decides
    when freed memory goes back to the OS). False, and nothing done, without glibc (macOS,
    Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_ok = mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) or mallopt(M_MMAP_THRESHOLD, MMAP_MAX_OLD_GLIBC)
    return bool(mmap_ok and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))


# --------------------------------------------------------------------------- optimizers


def optimizer_kwargs(
    factory: Callable[..., torch.optim.Optimizer],
    device: torch.device,
    fused: bool = True,
    fused_cpu: bool = False,
) -> dict[str, Any]:
    """{"fused": True} on CUDA (and on CPU with `fused_cpu`), else {"foreach": True}, for
    optimizers whose signature takes it; nothing when the optimizer config already sets either
    (the user's choice wins).

    Fused kernels do the whole update in one launch per parameter group (and let the grad
    scaler skip its found-inf host check); foreach batches the per-parameter loops. On CPU the
    fused Adam differs from foreach in the last bits (about 1e-8 after 20 steps), so it is
    trainer.fused_optimizer_cpu, off by default (on in trainer=fast).
    """
    given = getattr(factory, "keywords", {})
    if "fused" in given or "foreach" in given:
        return {}
    accepted = inspect.signature(factory).parameters
    wants_fused = device.type == "cuda" or (device.type == "cpu" and fused_cpu)
    if fused and wants_fused and "fused" in accepted:
        return {"fused": True}
    return {"foreach": True} if "foreach" in accepted else {}


def match_optimizer_layout(opt: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout.

    A resumed checkpoint keeps the strides it was saved with; fused optimizers walk the
    parameter and its moments as flat memory, so a channels_last weight with contiguous
    moments would be updated with the wrong moments.
    """
    for param, slots in opt.state.items():
        for key, value in slots.items():
            if (
                torch.is_tensor(value)
                and value.shape == param.shape
                and value.stride() != param.stride()
            ):
                slots[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


# ------------------------------------------------------------------------ channels_last


def has_conv(model: nn.Module) -> bool:
    """True when the model has a 4-D weight (a convolution): channels_last can help it."""
    return any(p.dim() == 4 for p in model.parameters())


def channels_last_applies(state: TrainState, data_shape: tuple[int, ...]) -> bool:
    """Whether NHWC can help: the data are images and some player convolves."""
    return len(data_shape) == 3 and any(has_conv(p.net) for p in state.players.values())


def channels_last(state: TrainState, data_shape: tuple[int, ...]) -> bool:
    """Put every player's network and EMA copy in channels_last (NHWC) when the data are
    images and a model convolves; returns whether it did. Tensor-core convolutions run NHWC
    natively, so NCHW would pay a transpose on each of them."""
    if not channels_last_applies(state, data_shape):
        return False
    for player in state.players.values():
        for model in player.modules():
            model.to(memory_format=torch.channels_last)
    return True


def channels_last_batches(batches: Iterator[Batch]) -> Iterator[Batch]:
    """The same batches, images in channels_last (one copy on the device per batch)."""
    for x, y in batches:
        yield x.contiguous(memory_format=torch.channels_last), y


# ------------------------------------------------------------------------------ compile


def eager(model: nn.Module) -> nn.Module:
    """The module under a torch.compile wrapper (the model itself when not compiled)."""
    return getattr(model, "_orig_mod", model)


def compile_works(backend: str, device: torch.device) -> bool:
    """Compile and run a one-line function: False (with the reason logged) when this machine
    cannot (e.g. inductor without a C compiler on CPU), so the run goes on eagerly."""
    try:
        torch.compile(lambda x: x * 2.0 + 1.0, backend=backend)(torch.ones(4, device=device))
    except Exception as err:  # noqa: BLE001 - any failure means: train eagerly
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning(
            "trainer.compile=true but torch.compile (backend %s) fails on this machine (%s); "
            "training eagerly.",
            backend,
            reason[:200],
        )
        return False
    return True


def keep_stateful_parametrizations_eager(model: nn.Module) -> int:
    """Run parametrizations that update buffers in place (spectral norm's power iteration)
    outside the compiled graphs; returns how many.

    Compiled, the power iteration's in-place update of u and v clobbers a tensor the first
    of D's two forwards (reals, fakes) saved for backward, and backward fails (seen with
    inductor on torch 2.15). Eager, spectral norm clones u and v before using them.
    """
    count = 0
    for module in model.modules():
        if not parametrize.is_parametrized(module):
            continue
        for plist in module.parametrizations.values():
            for p in plist:
                if any(True for _ in p.buffers()):
                    p.forward = torch.compiler.disable(p.forward)
                    count += 1
    return count


def compile_models(state: TrainState, trainer: DictConfig, penalties: list[str]) -> bool:
    """torch.compile every player's network in place; returns whether it did.

    EMA, sampling and checkpoints keep using the plain modules (EMA copies are never
    compiled, state_dict() unwraps), so a compiled run's checkpoint loads anywhere. Penalties
    need a double backward, which compiled graphs do not support: they run D eagerly, said once.
    """
    backend = trainer.get("compile_backend", "inductor")
    players = state.players
    device = next(eager(next(iter(players.values())).net).parameters()).device
    if not compile_works(backend, device):
        return False
    mode = trainer.get("compile_mode", "default")
    kwargs = {"backend": backend, "mode": None if mode == "default" else mode}
    if sum(keep_stateful_parametrizations_eager(p.net) for p in players.values()):
        log.info("trainer.compile=true: spectral norm's power iteration stays eager")
    for player in players.values():
        player.net = torch.compile(player.net, **kwargs)
    log.info(
        "trainer.compile=true: %s compiled (backend %s, mode %s)", ", ".join(players), backend, mode
    )
    if penalties:
        log.info(
            "trainer.compile=true: the penalties (%s) need double backward, which "
            "torch.compile does not support; they run on the eager D (the rest of D's "
            "passes stay compiled).",
            ", ".join(penalties),
        )
    return True


def layout_batches(
    batches: Iterator[Batch], state: TrainState, trainer: DictConfig, data_shape: tuple[int, ...]
) -> Iterator[Batch]:
    """The batches in the memory format the models train in (NHWC with trainer.channels_last)."""
    if trainer.get("channels_last", False) and channels_last_applies(state, data_shape):
        return channels_last_batches(batches)
    return batches


def accelerate(
    state: TrainState,
    batches: Iterator[Batch],
    trainer: DictConfig,
    data_shape: tuple[int, ...],
    penalties: list[str],
) -> Iterator[Batch]:
    """Apply trainer.channels_last, trainer.gemm_conv_pixels and trainer.compile to a built (or
    resumed) state; returns the batches to train on (in channels_last when the models are)."""
    if trainer.get("channels_last", False):
        channels_last(state, data_shape)
    gemm_pixels = trainer.get("gemm_conv_pixels", 0)
    for player in state.players.values():
        for model in player.modules():
            gemm_convolutions(model, gemm_pixels)
    for player in state.players.values():  # after a resume, or the layout change above
        match_optimizer_layout(player.opt)
    if trainer.get("compile", False):
        compile_models(state, trainer, penalties)
    return layout_batches(batches, state, trainer, data_shape)

"""Typed schemas for the config keys that are not `_target_` objects.

Registered in Hydra's ConfigStore and named in the defaults lists, so a typo
(`trainer.max_step=10`) or a wrong type (`trainer.batch_size=big`) fails at compose time,
before any work, with Hydra's message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from hydra.core.config_store import ConfigStore

CONF = (
    Path(__file__).parent / "conf"
)  # the packaged YAML groups (conf/ at the repo root links here)


class Device(str, Enum):
    auto = "auto"  # cuda when available, else cpu
    cpu = "cpu"
    cuda = "cuda"


class Direction(str, Enum):
    minimize = "minimize"  # lower is better (eval/fid, eval/reverse_kl)
    maximize = "maximize"  # higher is better (eval/hq_pct, eval/modes)


class OnNonFinite(str, Enum):
    stop = "stop"  # end the run with a message naming the step, the value, the last good checkpoint
    skip = "skip"  # drop the update whose loss is not finite (checks every step: a host sync)
    rollback = "rollback"  # reload the last good checkpoint with learning rates halved


class Reduce(str, Enum):
    best = "best"  # the best value any logged step reached (robust to a late collapse)
    last = "last"  # the value at the last step that logged the metric


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"  # autocast to bfloat16 (CUDA or CPU)
    fp16 = "fp16"  # autocast to float16 with a grad scaler (CUDA only)


@dataclass
class TrainerConfig:
    max_steps: int = 2000  # generator steps
    batch_size: int = 64  # images per D step and per G step, per process (DDP: x world size)
    n_critic: int = 1  # D steps per G step
    reuse_fakes: bool = False  # G's step reuses the last D step's fakes (one G forward per step)
    accumulate: int = 1  # micro-batches of batch_size per optimizer step (BigGAN's big batches)
    device: Device = Device.auto
    precision: Precision = Precision.fp32
    compile: bool = False  # torch.compile G and D (penalties' double backward stays eager)
    compile_mode: str = (
        "default"  # default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    )
    compile_backend: str = "inductor"  # inductor generates kernels; aot_eager needs no C compiler
    channels_last: bool = False  # NHWC models and image batches (faster convs on tensor cores)
    fused_optimizer: bool = True  # fused optimizer kernels on CUDA where the optimizer has them
    fused_optimizer_cpu: bool = False  # fused on CPU too (last-bit differences; trainer=fast)
    keep_freed_memory: bool = True  # glibc malloc reuses freed memory: no page faults per step
    gemm_conv_pixels: int = 0  # CPU fp32: convs with <= this many matmul rows per image run as
    # im2col + one matmul (training/gemm_conv.py); 0 = torch's kernels always (trainer=fast: 16)
    tf32: bool = True  # CUDA: TF32 matmuls and convs in fp32 runs; false for full fp32
    cudnn_benchmark: bool = True  # CUDA: cuDNN autotunes each conv shape on first use
    ema_decay: float = 0.999  # EMA of G's weights per step; samples come from the EMA copy
    ema_kimg: float = 0.0  # > 0: EMA half-life in thousands of images (StyleGAN), not ema_decay
    ema_rampup: float | None = None  # with ema_kimg: half-life <= rampup x images seen (0.05)
    grad_clip: float = 0.0  # max global gradient norm for G and D updates; 0 = no clipping
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs at step 0; 0 = off
    instance_noise_steps: int = 0  # steps to anneal that std linearly to 0; 0 = max_steps
    log_every: int = 50  # steps between metrics.jsonl lines
    sample_every: int = 500  # steps between sample grids (fixed noise)
    ckpt_every: int = 1000  # steps between step_<N>.pt (last.pt is also kept)
    keep_last: int = 0  # keep the newest N step_<N>.pt (last.pt and best.pt always); 0 = all
    on_nonfinite: OnNonFinite = OnNonFinite.stop  # a NaN/inf loss or weight: stop | skip | rollback
    max_rollbacks: int = 3  # on_nonfinite=rollback: at most this many reloads, then stop
    eval_every: int = 0  # steps between eval/* metrics (datasets with evaluate()); 0 = never
    eval_samples: int = 2500  # generated samples per evaluation (fixed noise from seed)
    n_samples: int = 64  # images in each sample grid
    sample_truncation: float | None = None  # sample grids: truncation psi; null: off
    sample_truncation_cutoff: int | None = None  # sample grids: StyleGAN2 layers cut; null: all
    plots: bool = True  # metric plots in <run>/plots/, redrawn on every sample-grid step
    timelapse: bool = True  # <run>/videos/timelapse.{mp4,gif} of the sample grids at the end (>= 2)
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    devices: int = 1  # processes on this machine: N > 1 relaunches under torchrun (DDP)
    sync_batchnorm: bool = False  # DDP on CUDA: BatchNorm statistics over all processes' batches


@dataclass
class ObjectiveConfig:
    """The one number `ganrun train` returns to a sweeper (Optuna), read from metrics.jsonl."""

    metric: str | None = None  # a metrics.jsonl key, e.g. eval/fid; null = return no objective
    direction: Direction = Direction.minimize  # which way is better; Optuna presets reuse it
    reduce: Reduce = Reduce.best  # best over the run, or the last logged value


def register() -> None:
    """Put the schemas in Hydra's ConfigStore (called by the CLI and tests before composing)."""
    ConfigStore.instance().store(group="trainer", name="schema", node=TrainerConfig)
    ConfigStore.instance().store(name="objective_schema", node=ObjectiveConfig, package="objective")

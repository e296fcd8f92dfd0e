"""`ganrun video`: an interpolation video from a checkpoint, or a training time-lapse of a run.

    ganrun video ckpt=<file or run> kind=interpolate n=16 frames=24 fps=24 [seed=] [labels=]
    ganrun video run=<run folder> kind=timelapse
    ganrun video ckpt=<translation run> kind=translate n=16 frames=24

Each writes <name>.mp4 (H.264) and <name>.gif into `out` (default <run>/videos/). The two kinds
share the output side only, so each is its own function, looked up by name like ganrun's tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console

from ganrun.errors import GanrunError
from ganrun.sampling.video_io import as_rgb, write_video

VIDEOS_DIR = "videos"


def _source(cfg: DictConfig, want: str) -> str:
    """ckpt= or run= (either names the run: a checkpoint's run folder, a run's last.pt)."""
    value = cfg.ckpt or cfg.run
    if not value:
        raise GanrunError(
            f"kind={cfg.kind} needs {want}: pass ckpt=<checkpoint file> or run=<run folder>, "
            f"e.g. `ganrun video run=outputs/<date>/<time> kind={cfg.kind}`."
        )
    return str(value)


def _out(cfg: DictConfig, run_dir: Path) -> Path:
    return Path(cfg.out) if cfg.out else run_dir / VIDEOS_DIR


def _frames_of(samples: list[torch.Tensor], scale: int):
    """Sample batches -> RGB frames: image grids, or scatter plots on axes fixed for the video."""
    from ganrun.sampling.images import grid_image, scatter_image

    if samples[0].dim() == 4:
        return [as_rgb(grid_image(s), scale) for s in samples]
    every = torch.cat(samples)
    bounds = torch.stack([every.min(0).values, every.max(0).values])
    return [as_rgb(scatter_image(s, 128 * scale, bounds)) for s in samples]


def interpolate(cfg: DictConfig, console: Console) -> list[Path]:
    """A looping latent walk of the checkpoint's generator (see sampling/interpolate.py)."""
    from ganrun.build import resolve_device
    from ganrun.evaluation.translation_command import is_translation
    from ganrun.sampling.generator import from_checkpoint
    from ganrun.sampling.interpolate import Walk, walk_frames
    from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint, run_folder_of

    path = resolve_checkpoint(_source(cfg, "a checkpoint"), "ckpt")
    ckpt = load_checkpoint(path, "ckpt")
    if is_translation(ckpt):
        raise GanrunError(
            f"ckpt={path} is a translation run (no latent space to walk). Use kind=translate: "
            f"its inputs dissolving into its outputs."
        )
    G = from_checkpoint(ckpt, cfg.ema, resolve_device(cfg.device))
    walk = Walk(
        n=cfg.n,
        keyframes=cfg.keyframes,
        frames=cfg.frames,
        seed=cfg.seed,
        labels=tuple(cfg.labels) if cfg.labels else None,
        classes=cfg.walk_classes,
        truncation=cfg.truncation,
        truncation_cutoff=cfg.truncation_cutoff,
    )
    samples = list(walk_frames(G, walk, cfg.batch_size))
    paths = write_video(
        _frames_of(samples, cfg.scale),
        _out(cfg, run_folder_of(path)) / f"interpolate_{ckpt['step']:07d}",
        cfg.fps,
    )
    console.print(
        f"{len(samples)} frames ({walk.keyframes} keyframes from seed {walk.seed}, "
        f"{walk.frames} per segment) from {path} -> {', '.join(map(str, paths))}"
    )
    return paths


def timelapse(cfg: DictConfig, console: Console) -> list[Path]:
    """The run's fixed-noise sample grids, one frame each, the step written on each."""
    from ganrun.sampling.timelapse import sample_grids, write_timelapse
    from ganrun.training.checkpoint import run_folder_of

    source = Path(_source(cfg, "a run folder"))
    run_dir = source if source.is_dir() else run_folder_of(source)
    paths = write_timelapse(run_dir, _out(cfg, run_dir), cfg.scale, cfg.timelapse_fps)
    grids = len(sample_grids(run_dir))
    console.print(f"{grids} sample grids of {run_dir} -> {', '.join(map(str, paths))}")
    return paths


def translate(cfg: DictConfig, console: Console) -> list[Path]:
    """A translation run's test inputs dissolving into `ganrun translate`'s outputs and back."""
    import tempfile

    import numpy as np
    from omegaconf import OmegaConf

    from ganrun.config import CONF
    from ganrun.sampling.translate import translate as run_translate
    from ganrun.sampling.translation_video import dissolve_frames
    from ganrun.training.checkpoint import load_checkpoint, resolve_checkpoint, run_folder_of

    path = resolve_checkpoint(_source(cfg, "a checkpoint"), "ckpt")
    step = load_checkpoint(path, "ckpt")["step"]
    with tempfile.TemporaryDirectory() as tmp:
        node = OmegaConf.load(CONF / "translate.yaml")  # `ganrun translate`'s own defaults
        for key in ("defaults", "hydra"):
            node.pop(key, None)
        given = {"ckpt": str(path), "out": tmp, "n": cfg.n, "ema": cfg.ema}
        node.merge_with({**given, "device": cfg.device, "batch_size": cfg.batch_size})
        run_translate(node, Console(quiet=True))
        with np.load(Path(tmp) / "translations.npz") as npz:
            inputs, outputs = npz["inputs"], npz["outputs"]
    frames = dissolve_frames(inputs, outputs, cfg.frames, cfg.scale)
    paths = write_video(frames, _out(cfg, run_folder_of(path)) / f"translate_{step:07d}", cfg.fps)
    console.print(
        f"{len(inputs)} test inputs -> outputs of {path}, {len(frames)} frames -> "
        f"{', '.join(map(str, paths))}"
    )
    return paths


# kind= -> what it makes (kinds share nothing but the writer)
KINDS: dict[str, Callable[[DictConfig, Console], list[Path]]] = {
    "interpolate": interpolate,
    "timelapse": timelapse,
    "translate": translate,
}


def video(cfg: DictConfig, console: Console | None = None) -> list[Path]:
    """Make the video `cfg.kind` names; returns the files written (mp4, gif)."""
    if cfg.kind not in KINDS:
        raise GanrunError(
            f"kind={cfg.kind} is not a kind of video. Use kind=interpolate (a latent walk of a "
            f"checkpoint), kind=timelapse (a run's sample grids over training) or "
            f"kind=translate (a translation run's inputs dissolving into its outputs)."
        )
    for key in ("n", "frames", "keyframes", "scale", "fps", "timelapse_fps", "batch_size"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanrunError(
                f"{key}={value}: must be a whole number >= 1 (conf/video.yaml has the defaults)."
            )
    return KINDS[cfg.kind](cfg, console or Console())

"""A training time-lapse: the fixed-noise grids samples/<step>.png of a run, one frame each,
with the step written above the grid. Every grid shows the same latents, so the video shows
what changes as the generator learns, not a reshuffling of samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ganrun.errors import GanrunError
from ganrun.sampling.video_io import as_rgb

SAMPLES_DIR = "samples"
TIMELAPSE = "timelapse"  # the file name (.mp4, .gif) in the videos folder
SCALE, FPS = 4, 4  # conf/video.yaml's scale and timelapse_fps, for time-lapses made unasked


def step_grids(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every sample grid the run has drawn so far, in step order."""
    folder = run_dir / SAMPLES_DIR
    return sorted((int(p.stem), p) for p in folder.glob("*.png") if p.stem.isdigit())


def sample_grids(run_dir: Path) -> list[tuple[int, Path]]:
    """step_grids(), or a clear error when the run has none."""
    grids = step_grids(run_dir)
    if not grids:
        folder = run_dir / SAMPLES_DIR
        raise GanrunError(
            f"{folder} holds no sample grids (<step>.png), so there is nothing to make a "
            f"time-lapse of. Pass the folder of a run that drew grids (trainer.sample_every > 0 "
            f"draws one every that many steps, and one at the end)."
        )
    return grids


def stamped(image: np.ndarray, text: str) -> np.ndarray:
    """An RGB frame with a black band on top holding `text` in white."""
    h, w = image.shape[:2]
    band = max(16, min(32, w // 10))  # px: readable on a 74 px grid, not a banner on 512
    canvas = Image.new("RGB", (w, h + band), "black")
    canvas.paste(Image.fromarray(image), (0, band))
    font = ImageFont.load_default(size=max(8, band - 4))
    ImageDraw.Draw(canvas).text((3, 1), text, fill="white", font=font)
    return np.asarray(canvas)


def timelapse_frames(run_dir: Path, scale: int = 1) -> list[np.ndarray]:
    """One RGB frame per sample grid, upscaled by `scale`, its step written on it."""
    frames = []
    for step, path in sample_grids(run_dir):
        with Image.open(path) as img:
            grid = np.asarray(img.convert("RGB"))
        frames.append(as_rgb(stamped(as_rgb(grid, scale), f"step {step:,}")))
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        raise GanrunError(
            f"the sample grids in {run_dir / SAMPLES_DIR} differ in size ({sorted(sizes)}): the "
            f"run changed trainer.n_samples when it was resumed. Move the odd grids aside."
        )
    return frames


def write_timelapse(run_dir: Path, out: Path, scale: int = SCALE, fps: int = FPS) -> list[Path]:
    """<out>/timelapse.mp4 and .gif of the run's sample grids; returns their paths."""
    from ganrun.sampling.video_io import write_video

    return write_video(timelapse_frames(run_dir, scale), out / TIMELAPSE, fps)

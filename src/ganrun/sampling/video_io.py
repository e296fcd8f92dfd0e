"""Frames to files: an H.264 mp4 through PyAV (FFmpeg's libx264) and a gif through Pillow.

Both encoders are imported when a video is written, never when ganrun is imported (PyAV
loads FFmpeg's shared libraries). Files are encoded in memory and written atomically, so an
interrupted `ganrun video` never leaves a truncated mp4 that players half-open.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from ganrun.atomic_io import atomic_write
from ganrun.errors import GanrunError

CODEC = "libx264"  # H.264: plays in every browser and in W&B
PIXEL_FORMAT = "yuv420p"  # the one H.264 flavour all players decode; needs even sizes
CRF = "18"  # x264 quality (0 lossless .. 51 worst); 18 looks lossless on GAN samples


def as_rgb(frame: np.ndarray, scale: int = 1) -> np.ndarray:
    """uint8 (H, W) or (H, W, 1|3) -> (H*scale, W*scale, 3), nearest-neighbour upscaled (a 16 px
    digit is a smudge at 1x), padded with black to even sizes (yuv420p halves both)."""
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    if scale > 1:
        frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def _check(frames: Sequence[np.ndarray], fps: int) -> None:
    if not frames:
        raise GanrunError("a video needs at least one frame; none were made.")
    if fps < 1:
        raise GanrunError(f"fps={fps}: frames per second must be at least 1 (e.g. fps=24).")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise GanrunError(
            f"video frames differ in size ({sorted(shapes)}); pass frames of one size."
        )


def encoder_available() -> bool:
    """Whether this PyAV build has the libx264 encoder (its wheels bundle it)."""
    import av

    return CODEC in av.codecs_available


def mp4_bytes(frames: Sequence[np.ndarray], fps: int) -> bytes:
    """RGB uint8 frames (H, W, 3), even H and W, as an H.264 mp4 at `fps` frames per second."""
    import av

    _check(frames, fps)
    if not encoder_available():
        raise GanrunError(
            f"this PyAV build has no {CODEC} encoder, so no mp4 can be written. Reinstall PyAV "
            f"from its wheels (`pip install --force-reinstall av`), which bundle FFmpeg with "
            f"libx264; the gif is written regardless."
        )
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream(CODEC, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, PIXEL_FORMAT
        stream.options = {"crf": CRF}
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush the encoder's delayed frames
    return buf.getvalue()


def gif_bytes(frames: Sequence[np.ndarray], fps: int) -> bytes:
    """The same frames as a looping gif (Pillow; a gif's delay is in whole milliseconds)."""
    from PIL import Image

    _check(frames, fps)
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        optimize=False,  # keep every frame whole: decoders and tests see the frames we drew
        disposal=1,
    )
    return buf.getvalue()


def write_video(frames: Sequence[np.ndarray], stem: Path, fps: int) -> list[Path]:
    """<stem>.mp4 and <stem>.gif from the same frames; returns their paths."""
    mp4, gif = stem.with_suffix(".mp4"), stem.with_suffix(".gif")
    atomic_write(mp4, mp4_bytes(frames, fps))
    atomic_write(gif, gif_bytes(frames, fps))
    return [mp4, gif]

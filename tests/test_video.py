"""`ganrun video`: interpolation walks and time-lapses, decoded back with PyAV and Pillow.

One 4-step digits smoke run (grids at steps 2 and 4) and one ring8 run serve the module;
conditional walks use an untrained conditional generator (the keyframe identities hold for
any weights).
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import compose_cfg
from PIL import Image
from rich.console import Console
from test_train import run

from ganrun.build import build_generator
from ganrun.errors import GanrunError
from ganrun.sampling.command import sample
from ganrun.sampling.generator import Generator
from ganrun.sampling.images import to_uint8
from ganrun.sampling.interpolate import Walk, ease, mixed_classes, slerp, walk_frames
from ganrun.sampling.timelapse import timelapse_frames
from ganrun.sampling.video import video
from ganrun.sampling.video_io import as_rgb, gif_bytes, mp4_bytes
from ganrun.training.checkpoint import load_checkpoint

GRID = 2 * 18 + 2  # px: 4 digits of 16 px in a 2 x 2 grid with 2 px padding


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("digits") / "run"
    run(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def ring8_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ring8") / "run"
    run(run_dir, "experiment=ring8")
    return run_dir


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def video_cfg(*overrides: str):
    return compose_cfg(*overrides, task="video", smoke=False)


def decode(path: Path) -> tuple[list[np.ndarray], Fraction, str]:
    """Every frame of a video file as RGB arrays, its frame rate and its codec."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, stream.average_rate, stream.codec_context.name


def gif_frames(path: Path) -> tuple[list[np.ndarray], int]:
    with Image.open(path) as img:
        frames = []
        for i in range(img.n_frames):
            img.seek(i)
            frames.append(np.asarray(img.convert("RGB")))
        return frames, img.info["duration"]


def conditional_generator(cfg_overrides=("conditioning=projection",)) -> Generator:
    """An untrained class-conditional DCGAN generator for 16 px digits (10 classes), its
    class embeddings random."""
    cfg = compose_cfg(*cfg_overrides)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_generator(cfg.model, (1, 16, 16), cfg.conditioning, 10)
        for m in net.modules():  # untrained CBN scales are all 1: make the classes differ
            if isinstance(m, torch.nn.Embedding):
                torch.nn.init.normal_(m.weight, 1.0, 0.5)
    return Generator(net.eval(), int(cfg.model.z_dim), (1, 16, 16), 10)


# --- the encoder -------------------------------------------------------------------------


def test_mp4_and_gif_decode_to_the_frames_written():
    """10 frames of 38 x 38 gray levels, upscaled x3 and padded to even: the mp4 decodes to
    10 H.264 frames of 114 x 114 at 12 fps, the gif to the same frames exactly."""
    frames = [as_rgb(np.full((GRID, GRID), 20 * i, np.uint8), 3) for i in range(10)]
    assert frames[0].shape == (114, 114, 3)
    with av.open(io.BytesIO(mp4_bytes(frames, 12))) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == 12
    assert len(decoded) == 10
    assert {f.shape for f in decoded} == {(114, 114, 3)}
    for i, f in enumerate(decoded):  # lossy, but a flat gray level survives within a step
        assert abs(float(f.mean()) - 20 * i) < 2.0, i
    with Image.open(io.BytesIO(gif_bytes(frames, 12))) as img:
        assert img.n_frames == 10
        img.seek(7)
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), frames[7])


def test_odd_sizes_are_padded_to_even():
    """yuv420p halves both sizes: a 37 x 21 frame becomes 38 x 22, the pad black."""
    frame = as_rgb(np.full((37, 21, 3), 200, np.uint8))
    assert frame.shape == (38, 22, 3)
    assert frame[:37, :21].min() == 200 and frame[37:].max() == 0 and frame[:, 21:].max() == 0


def test_bad_fps_and_no_frames_are_refused():
    with pytest.raises(GanrunError, match="fps=0"):
        mp4_bytes([np.zeros((4, 4, 3), np.uint8)], 0)
    with pytest.raises(GanrunError, match="at least one frame"):
        gif_bytes([], 10)


# --- slerp ---------------------------------------------------------------------------------


def test_slerp_against_hand_values():
    """Unit x to unit y at t=1/2 is (1, 1)/sqrt 2; with radii 1 and 3 the radius is 2; the
    ends are the inputs bit for bit; parallel rows fall back to a straight line."""
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 3.0], [2.0, 0.0]])
    h = math.sqrt(0.5)
    expected = torch.tensor([[h, h], [2 * h, 2 * h], [1.5, 0.0]])
    torch.testing.assert_close(slerp(a, b, 0.5), expected)
    # t = 1/3 on the unit circle: angle pi/6
    torch.testing.assert_close(
        slerp(a[:1], b[:1], 1 / 3), torch.tensor([[math.cos(math.pi / 6), 0.5]])
    )
    z = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    w = torch.randn(5, 7, generator=torch.Generator().manual_seed(2))
    assert torch.equal(slerp(z, w, 0.0), z) and torch.equal(slerp(z, w, 1.0), w)


def test_ease_is_smoothstep():
    torch.testing.assert_close(
        torch.tensor([ease(t) for t in (0.0, 0.25, 0.5, 1.0)]),
        torch.tensor([0.0, 0.15625, 0.5, 1.0]),
    )


# --- interpolation -------------------------------------------------------------------------


def test_keyframes_equal_ganrun_sample_images(digits_run, tmp_path):
    """Frame k * frames of a walk from seed 5 is `ganrun sample n=4 seed=5+k`, byte for byte."""
    ckpt = digits_run / "checkpoints" / "last.pt"
    G_cfg = video_cfg(f"ckpt={ckpt}")
    from ganrun.sampling.generator import from_checkpoint

    G = from_checkpoint(load_checkpoint(ckpt), G_cfg.ema)
    frames = list(walk_frames(G, Walk(n=4, keyframes=3, frames=4, seed=5)))
    assert len(frames) == 12
    for k in range(3):
        out = tmp_path / f"s{k}"
        sample(
            compose_cfg(
                f"ckpt={ckpt}", "n=4", f"seed={5 + k}", f"out={out}", task="sample", smoke=False
            ),
            quiet(),
        )
        with np.load(out / "samples.npz") as npz:
            images = npz["images"]
        got = to_uint8(frames[4 * k]).permute(0, 2, 3, 1).numpy()
        np.testing.assert_array_equal(got, images)
    assert not torch.equal(frames[1], frames[0]) and not torch.equal(frames[1], frames[4])


def test_interpolate_video_decodes(digits_run, tmp_path):
    """kind=interpolate n=4 keyframes=2 frames=3 scale=2 fps=10: 6 frames of 76 x 76 at
    10 fps in the mp4 and the gif; the gif's first frame is the seed-0 grid."""
    paths = video(
        video_cfg(
            f"ckpt={digits_run / 'checkpoints' / 'last.pt'}",
            "kind=interpolate",
            "n=4",
            "keyframes=2",
            "frames=3",
            "scale=2",
            "fps=10",
            f"out={tmp_path}",
        ),
        quiet(),
    )
    assert [p.name for p in paths] == ["interpolate_0000004.mp4", "interpolate_0000004.gif"]
    frames, rate, codec = decode(paths[0])
    assert (len(frames), rate, codec) == (6, 10, "h264")
    assert {f.shape for f in frames} == {(2 * GRID, 2 * GRID, 3)}
    gif, duration = gif_frames(paths[1])
    assert len(gif) == 6 and duration == 100
    G = Generator(*_generator_parts(digits_run))
    from ganrun.sampling.images import grid_image

    np.testing.assert_array_equal(gif[0], as_rgb(grid_image(G.sample(4, 0)), 2))


def _generator_parts(run_dir: Path):
    from ganrun.sampling.generator import from_checkpoint

    G = from_checkpoint(load_checkpoint(run_dir / "checkpoints" / "last.pt"))
    return G.net, G.z_dim, G.data_shape, G.num_classes, G.step


def test_scatter_walk_of_2d_data(ring8_run, tmp_path):
    """ring8 (2-D points) animates a scatter plot: frames of 128 * scale px, axes fixed."""
    paths = video(
        video_cfg(
            f"ckpt={ring8_run}", "n=64", "keyframes=2", "frames=2", "scale=1", f"out={tmp_path}"
        ),
        quiet(),
    )
    frames, rate, _ = decode(paths[0])
    assert len(frames) == 4 and rate == 24
    assert {f.shape for f in frames} == {(128, 128, 3)}
    gif, _ = gif_frames(paths[1])
    assert not np.array_equal(gif[0], gif[1])  # the points move


def test_conditional_seed_walk_within_one_class():
    """labels=[3]: every keyframe is G.sample(n, seed + k, labels=[3])."""
    G = conditional_generator()
    frames = list(walk_frames(G, Walk(n=4, keyframes=2, frames=3, seed=1, labels=(3,))))
    torch.testing.assert_close(frames[0], G.sample(4, 1, [3]), rtol=0, atol=0)
    torch.testing.assert_close(frames[3], G.sample(4, 2, [3]), rtol=0, atol=0)
    assert not torch.equal(frames[0], G.sample(4, 1, [4]))


@pytest.mark.parametrize("conditioning", ["projection", "cbn_projection"])
def test_class_walk_moves_through_the_classes(conditioning):
    """walk_classes over [3, 7]: z fixed, keyframes are the seed's samples of class 3 and of
    class 7, the frame between them mixes the embeddings (differs from both)."""
    G = conditional_generator((f"conditioning={conditioning}",))
    walk = Walk(n=4, keyframes=2, frames=4, seed=2, labels=(3, 7), classes=True)
    frames = list(walk_frames(G, walk))
    assert len(frames) == 8
    torch.testing.assert_close(frames[0], G.sample(4, 2, [3]), rtol=0, atol=0)
    torch.testing.assert_close(frames[4], G.sample(4, 2, [7]), rtol=0, atol=0)
    assert not torch.equal(frames[2], frames[0]) and not torch.equal(frames[2], frames[4])


def test_mixed_classes_lerps_every_embedding():
    """Inside the block an nn.Embedding returns 0.75 * e[y] + 0.25 * e[target]; after it, e[y]."""
    net = torch.nn.Sequential(torch.nn.Embedding(5, 3))
    e = net[0].weight.detach()
    y, target = torch.tensor([0, 1]), torch.tensor([4, 4])
    with mixed_classes(net, target, 0.25):
        got = net(y)
    torch.testing.assert_close(got, 0.75 * e[[0, 1]] + 0.25 * e[[4, 4]])
    torch.testing.assert_close(net(y), e[[0, 1]])


def test_walk_mistakes_are_explained(digits_run):
    G = Generator(*_generator_parts(digits_run))
    with pytest.raises(GanrunError, match="unconditional"):
        list(walk_frames(G, Walk(n=4, classes=True)))
    with pytest.raises(GanrunError, match="keyframes=1"):
        list(walk_frames(G, Walk(n=4, keyframes=1)))
    with pytest.raises(GanrunError, match="truncation=0.7"):
        list(walk_frames(G, Walk(n=4, truncation=0.7)))
    with pytest.raises(GanrunError, match="at least two classes"):
        list(walk_frames(conditional_generator(), Walk(n=4, labels=(3,), classes=True)))
    for bad in ("fps=0", "frames=ten", "scale=1.5"):
        with pytest.raises(GanrunError, match=f"{bad}: must be a whole number >= 1"):
            video(video_cfg(f"ckpt={digits_run}", bad), quiet())
    with pytest.raises(GanrunError, match="kind=nope"):
        video(video_cfg(f"ckpt={digits_run}", "kind=nope"), quiet())
    with pytest.raises(GanrunError, match="ckpt=<checkpoint file> or run=<run folder>"):
        video(video_cfg("kind=timelapse"), quiet())


# --- time-lapse ----------------------------------------------------------------------------


def test_timelapse_has_a_frame_per_grid(digits_run, tmp_path):
    """Grids at steps 2 and 4 (16 digits: 74 px) -> 2 frames at 4 fps; below the step band
    each frame is its grid upscaled x2, pixel for pixel."""
    paths = video(
        video_cfg(f"run={digits_run}", "kind=timelapse", "scale=2", f"out={tmp_path}"), quiet()
    )
    assert [p.name for p in paths] == ["timelapse.mp4", "timelapse.gif"]
    frames, rate, codec = decode(paths[0])
    assert (len(frames), rate, codec) == (2, 4, "h264")
    raw = timelapse_frames(digits_run, scale=2)
    side = 2 * 74
    band = raw[0].shape[0] - side
    assert band == 16  # a tenth of the width, at least 16 px
    for step, frame in zip((2, 4), raw, strict=True):
        with Image.open(digits_run / "samples" / f"{step:07d}.png") as img:
            grid = as_rgb(np.asarray(img.convert("RGB")), 2)
        np.testing.assert_array_equal(frame[band:], grid)
        assert frame[:band].max() > 200  # the step is written in white on black
    assert not np.array_equal(raw[0][:band], raw[1][:band])  # step 2 vs step 4
    assert {f.shape for f in frames} == {raw[0].shape}


def test_timelapse_of_a_run_without_grids(tmp_path):
    (tmp_path / "samples").mkdir()
    with pytest.raises(GanrunError, match="no sample grids"):
        video(video_cfg(f"run={tmp_path}", "kind=timelapse"), quiet())


def test_video_task_from_the_command_line(digits_run, tmp_path):
    """`ganrun video run=... kind=timelapse out=...` is a registered task and exits 0."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganrun",
            "video",
            f"run={digits_run}",
            "kind=timelapse",
            f"out={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in tmp_path.glob("timelapse.*")) == [
        "timelapse.gif",
        "timelapse.mp4",
    ]


# --- translation runs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory) -> Path:
    from test_methods import EDGES, TINY_TRANSLATOR

    folder = tmp_path_factory.mktemp("p2p") / "run"
    run(folder, "method=pix2pix", *EDGES, *TINY_TRANSLATOR, "trainer.max_steps=2")
    return folder


def test_translate_video_dissolves_inputs_into_ganrun_translate_outputs(pix2pix_run, tmp_path):
    """kind=translate n=4 frames=3: 6 frames; frame 0 is the grid of the test inputs, frame 3
    the grid of `ganrun translate n=4`'s outputs, frame 1 between them."""
    from ganrun.data.base import from_uint8
    from ganrun.sampling.images import grid_image
    from ganrun.sampling.translate import translate

    paths = video(
        video_cfg(f"ckpt={pix2pix_run}", "kind=translate", "n=4", "frames=3", "scale=1",
                  f"out={tmp_path}"),
        quiet(),
    )  # fmt: skip
    assert [p.name for p in paths] == ["translate_0000002.mp4", "translate_0000002.gif"]
    frames, rate, _ = decode(paths[0])
    assert len(frames) == 6 and rate == 24
    translate(
        compose_cfg(f"ckpt={pix2pix_run}", f"out={tmp_path / 't'}", "n=4", task="translate",
                    smoke=False),
        quiet(),
    )  # fmt: skip
    with np.load(tmp_path / "t" / "translations.npz") as npz:
        inputs, outputs = npz["inputs"], npz["outputs"]

    def grid(nhwc):
        return as_rgb(grid_image(from_uint8(torch.from_numpy(nhwc).permute(0, 3, 1, 2))))

    gif, _ = gif_frames(paths[1])
    np.testing.assert_array_equal(gif[0], grid(inputs))
    np.testing.assert_array_equal(gif[3], grid(outputs))
    middle = gif[1].astype(int)
    a, b = grid(inputs).astype(int), grid(outputs).astype(int)
    lo, hi = np.minimum(a, b) - 1, np.maximum(a, b) + 1
    assert ((middle >= lo) & (middle <= hi)).all()  # a blend: between the two, pixel by pixel
    assert not np.array_equal(gif[1], gif[0])


def test_interpolating_a_translation_run_points_at_kind_translate(pix2pix_run):
    with pytest.raises(GanrunError, match="kind=translate"):
        video(video_cfg(f"ckpt={pix2pix_run}", "kind=interpolate"), quiet())


def test_truncation_reaches_the_generator():
    """An untrained StyleGAN2 G: keyframes equal G.sample(..., truncation=0.5) of their seeds,
    and differ from the untruncated samples (psi is passed through, not dropped)."""
    cfg = compose_cfg("model=stylegan2")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_generator(cfg.model, (1, 16, 16), None, None)
    G = Generator(net.eval(), int(cfg.model.z_dim), (1, 16, 16))
    frames = list(walk_frames(G, Walk(n=4, keyframes=2, frames=3, seed=1, truncation=0.5)))
    torch.testing.assert_close(frames[0], G.sample(4, 1, truncation=0.5), rtol=0, atol=0)
    torch.testing.assert_close(frames[3], G.sample(4, 2, truncation=0.5), rtol=0, atol=0)
    assert not torch.equal(frames[0], G.sample(4, 1))

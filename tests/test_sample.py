"""ganrun.sampling.command.sample: grids, npz arrays, seeds, EMA vs raw G, checkpoints on their own."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from omegaconf import OmegaConf
from PIL import Image
from rich.console import Console

from ganrun.build import build_generator
from ganrun.sampling.command import sample
from ganrun.sampling.images import to_uint8
from ganrun.training.train import train


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def smoke_train(run_dir: Path, *overrides: str) -> Path:
    train(compose_cfg(*overrides), run_dir, overrides=["debug=smoke", *overrides], console=quiet())
    return run_dir / "checkpoints" / "last.pt"


def draw(ckpt: Path, out: Path | None, *overrides: str, n: int = 10, seed: int = 0) -> Path:
    """sample() with the real composed sample config."""
    given = [f"ckpt={ckpt}", f"n={n}", f"seed={seed}", *overrides]
    if out is not None:
        given.append(f"out={out}")
    return sample(compose_cfg(*given, task="sample", smoke=False), console=quiet())


def images(folder: Path) -> np.ndarray:
    with np.load(folder / "samples.npz") as npz:
        assert list(npz.keys()) == ["images"]
        return npz["images"]


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory) -> Path:
    """last.pt of a smoke dcgan run on the embedded digits (16x16 grey)."""
    return smoke_train(tmp_path_factory.mktemp("digits") / "run")


@pytest.fixture(scope="module")
def ring_ckpt(tmp_path_factory) -> Path:
    """last.pt of a smoke MLP run on ring8 (2-D points)."""
    return smoke_train(tmp_path_factory.mktemp("ring") / "run", "experiment=ring8")


def expected_uint8(ckpt_path: Path, weights: str, n: int, seed: int) -> np.ndarray:
    """What the checkpoint's `weights` generator makes of seed `seed`'s noise, as NHWC uint8."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = ckpt["config"]["model"]
    G = build_generator(OmegaConf.create(model), tuple(ckpt["data"]["shape"]))
    G.load_state_dict(ckpt["players"]["G"][weights])
    G.eval()
    z = torch.randn(n, model["z_dim"], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return to_uint8(G(z)).permute(0, 2, 3, 1).numpy()


def test_image_samples_npz_and_grid(digits_ckpt, tmp_path):
    """n=10 digits samples: uint8 (10, 16, 16, 1) in samples.npz and a 4-column grid.png."""
    out = draw(digits_ckpt, tmp_path / "s")
    assert out == tmp_path / "s"
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "samples.npz"]
    arr = images(out)
    assert arr.dtype == np.uint8
    assert arr.shape == (10, 16, 16, 1)
    assert 0 < arr.std()  # not a constant image
    with Image.open(out / "grid.png") as img:
        # ceil(sqrt(10)) = 4 columns, 3 rows, 16 px tiles, 2 px padding
        assert (img.format, img.mode, img.size) == ("PNG", "L", (4 * 18 + 2, 3 * 18 + 2))


def test_same_seed_same_bytes_other_seed_other_images(digits_ckpt, tmp_path):
    """Seed 0 twice gives byte-identical files; seed 1 gives different images."""
    a = draw(digits_ckpt, tmp_path / "a", seed=0)
    b = draw(digits_ckpt, tmp_path / "b", seed=0)
    c = draw(digits_ckpt, tmp_path / "c", seed=1)
    for name in ("samples.npz", "grid.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not np.array_equal(images(a), images(c))
    assert (a / "grid.png").read_bytes() != (c / "grid.png").read_bytes()


def test_ema_flag_picks_the_generator(digits_ckpt, tmp_path):
    """ema=true samples G_ema's output, ema=false G's; the two differ."""
    ema = images(draw(digits_ckpt, tmp_path / "ema", "ema=true"))
    raw = images(draw(digits_ckpt, tmp_path / "raw", "ema=false"))
    np.testing.assert_array_equal(ema, expected_uint8(digits_ckpt, "ema", 10, 0))
    np.testing.assert_array_equal(raw, expected_uint8(digits_ckpt, "net", 10, 0))
    assert not np.array_equal(ema, raw)


def test_point_samples(ring_ckpt, tmp_path):
    """A ring8 MLP checkpoint gives float32 points (n, 2) and a 512 px scatter.png."""
    out = draw(ring_ckpt, tmp_path / "s", n=50)
    assert sorted(p.name for p in out.iterdir()) == ["samples.npz", "scatter.png"]
    with np.load(out / "samples.npz") as npz:
        assert list(npz.keys()) == ["points"]
        points = npz["points"]
    assert points.dtype == np.float32
    assert points.shape == (50, 2)
    assert np.isfinite(points).all()
    assert 0 < points.std() < 100
    with Image.open(out / "scatter.png") as img:
        assert (img.format, img.mode, img.size) == ("PNG", "RGB", (512, 512))


def test_checkpoint_alone_is_enough(digits_ckpt, tmp_path):
    """A copy of last.pt in another folder, its run folder deleted, samples the same bytes."""
    run_copy = tmp_path / "run"
    shutil.copytree(digits_ckpt.parent.parent, run_copy)
    moved = tmp_path / "elsewhere" / "model.pt"
    moved.parent.mkdir()
    shutil.copy(run_copy / "checkpoints" / "last.pt", moved)
    shutil.rmtree(run_copy)
    from_moved = draw(moved, tmp_path / "moved")
    from_run = draw(digits_ckpt, tmp_path / "orig")
    for name in ("samples.npz", "grid.png"):
        assert (from_moved / name).read_bytes() == (from_run / name).read_bytes(), name


def test_default_out_is_beside_the_checkpoints(tmp_path):
    """out=null writes samples_<step>/ in the checkpoint's run folder; ckpt may be the run folder."""
    ckpt = smoke_train(tmp_path / "run")
    out = draw(tmp_path / "run", None, n=4)
    assert out == tmp_path / "run" / "samples_0000004"
    assert images(out).shape == (4, 16, 16, 1)
    assert ckpt.is_file()


@pytest.mark.parametrize("n, channels", [(1, 1), (7, 1), (16, 3), (10, 3)])
def test_tile_matches_torchvision_make_grid(n, channels):
    """save_grid's own tiling gives torchvision's make_grid pixels (padding 2, black), so
    sample grids keep their bytes without importing torchvision at start-up."""
    from torchvision.utils import make_grid

    from ganrun.sampling.images import tile

    images = torch.randint(0, 256, (n, channels, 5, 6), dtype=torch.uint8)
    nrow = max(1, math.ceil(math.sqrt(n)))
    expected = make_grid(images, nrow=nrow, padding=2)
    got = tile(images, nrow)
    if channels == 1:  # make_grid repeats one channel to three; save_grid keeps channel 0
        expected = expected[:1]
    assert got.dtype == torch.uint8 and got.shape == expected.shape
    assert torch.equal(got, expected)

"""`ganrun translate`: outputs under the inputs' names, the grid, translations.npz; rebuilt
from the checkpoint alone; CycleGAN's reverse direction, StarGAN's domains; refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from PIL import Image
from test_methods import EDGES, TINY_TRANSLATOR
from test_train import load, quiet, run

from ganrun.data.base import from_uint8
from ganrun.errors import GanrunError
from ganrun.sampling.command import sample
from ganrun.sampling.images import to_uint8
from ganrun.sampling.translate import method_from_checkpoint, translate

CPU = torch.device("cpu")
SHORT = ["trainer.max_steps=2", "trainer.ckpt_every=0", "trainer.sample_every=0"]


def translate_cfg(ckpt, out, *overrides):
    return compose_cfg(f"ckpt={ckpt}", f"out={out}", *overrides, task="translate", smoke=False)


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("p2p") / "run"
    run(folder, "method=pix2pix", *EDGES, *TINY_TRANSLATOR, *SHORT)
    return folder


def png(path):
    with Image.open(path) as img:
        return np.asarray(img)


def test_translates_the_test_split_under_its_names(pix2pix_run, tmp_path):
    """input=test n=6: 00000.png..00005.png (the test set's names), each the generator's
    output on that test image (rebuilt from the checkpoint), also in translations.npz."""
    out = translate(translate_cfg(pix2pix_run, tmp_path / "t", "n=6"), quiet())
    names = [f"{i:05d}.png" for i in range(6)]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "grid.png", "translations.npz"])
    ckpt = load(pix2pix_run / "checkpoints" / "last.pt")
    method, state = method_from_checkpoint(ckpt, CPU)
    npz = np.load(out / "translations.npz")
    assert list(npz["names"]) == names
    expected = to_uint8(
        method.translator(state)(from_uint8(torch.from_numpy(npz["inputs"]).permute(0, 3, 1, 2)))
    )
    np.testing.assert_array_equal(npz["outputs"], expected.permute(0, 2, 3, 1).numpy())
    for i, name in enumerate(names):
        np.testing.assert_array_equal(png(out / name), npz["outputs"][i, ..., 0])
    assert npz["targets"].shape == npz["inputs"].shape == (6, 16, 16, 1)
    # grid: input / output / target rows of 6 images of 16 px with 2 px padding
    assert png(out / "grid.png").shape == (3 * 18 + 2, 6 * 18 + 2)


def test_translates_a_folder_keeping_each_name(pix2pix_run, tmp_path):
    """cat.png and dog.jpg (32 px RGB: converted to the run's 16 px grey) -> cat.png, dog.png."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("cat.png", "dog.jpg"):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    out = translate(translate_cfg(pix2pix_run, tmp_path / "t", f"input={folder}"), quiet())
    assert sorted(p.name for p in out.iterdir()) == [
        "cat.png",
        "dog.png",
        "grid.png",
        "translations.npz",
    ]
    assert png(out / "cat.png").shape == (16, 16)
    assert list(np.load(out / "translations.npz")["names"]) == ["cat.png", "dog.jpg"]


def test_refusals(pix2pix_run, tmp_path):
    """pix2pix learned one direction; a folder without images; ganrun sample on this run."""
    with pytest.raises(GanrunError, match="direction=BtoA"):
        translate(translate_cfg(pix2pix_run, tmp_path / "t", "direction=BtoA"), quiet())
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanrunError, match="holds no images"):
        translate(
            translate_cfg(pix2pix_run, tmp_path / "t", f"input={tmp_path / 'empty'}"), quiet()
        )
    with pytest.raises(GanrunError, match="is not a folder"):
        translate(
            translate_cfg(pix2pix_run, tmp_path / "t", f"input={tmp_path / 'nowhere'}"), quiet()
        )
    with pytest.raises(GanrunError, match="ganrun translate"):
        sample(compose_cfg(f"ckpt={pix2pix_run}", task="sample", smoke=False), quiet())


def test_cyclegan_reverse_direction_uses_g_ba(tmp_path):
    """direction=BtoA on an AtoB CycleGAN run translates B test images with G_BA."""
    folder = tmp_path / "run"
    run(folder, "method=cyclegan", *EDGES, *TINY_TRANSLATOR, "method.generator.blocks=1", *SHORT)
    out = translate(translate_cfg(folder, tmp_path / "t", "direction=BtoA", "n=4"), quiet())
    npz = np.load(out / "translations.npz")
    method, state = method_from_checkpoint(load(folder / "checkpoints" / "last.pt"), CPU)
    x = from_uint8(torch.from_numpy(npz["inputs"]).permute(0, 3, 1, 2))
    with torch.no_grad():
        state.players["G_BA"].net.eval()
        expected = to_uint8(state.players["G_BA"].net(x)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(npz["outputs"], expected)


def test_stargan_domain_on_a_folder(tmp_path):
    """StarGAN on digits (classes as domains): domain=3 translates every image into class 3;
    an out-of-range domain is refused."""
    folder = tmp_path / "run"
    run(folder, "method=stargan", *TINY_TRANSLATOR, "method.generator.blocks=1", *SHORT)
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(images / "zero.png")
    out = translate(translate_cfg(folder, tmp_path / "t", f"input={images}", "domain=3"), quiet())
    npz = np.load(out / "translations.npz")
    assert npz["domains"].tolist() == [3] and (out / "zero.png").is_file()
    with pytest.raises(GanrunError, match="domain=12"):
        translate(translate_cfg(folder, tmp_path / "u", f"input={images}", "domain=12"), quiet())


def test_grid_rows_wrap_into_bands_of_eight():
    """10 grey inputs beside 10 RGB outputs: 2 bands of (input, output) rows, 8 columns of
    4 px + 2 px padding; grey shown as RGB; the short band padded with black."""
    from ganrun.training.methods.translation import grid

    inputs, outputs = torch.zeros(10, 1, 4, 4), torch.ones(10, 3, 4, 4)
    image = grid([inputs, outputs])
    assert tuple(image.shape) == (1, 3, 4 * 6 + 2, 8 * 6 + 2)
    u8 = to_uint8(image)[0]
    top = lambda band_row, col: u8[:, 2 + band_row * 6, 2 + col * 6].tolist()  # noqa: E731
    assert top(0, 0) == [128] * 3 and top(1, 7) == [255] * 3  # input (0 -> 128), output
    assert top(2, 1) == [128] * 3 and top(3, 1) == [255] * 3  # images 8 and 9
    assert top(2, 2) == [0] * 3 and top(3, 7) == [0] * 3  # padding

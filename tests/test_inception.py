"""The FID Inception network against pytorch-fid's, with one shared (seeded random) state dict.

The real weights file is not on these machines, so equivalence is shown with random weights
loaded into both networks: same graph + same weights + same preprocessing = same features.
The random weights are scaled so activations are neither ~0 nor identical across images
(checked below), otherwise any comparison would pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
import pytorch_fid.inception as pfi
import torch
from PIL import Image
from pytorch_fid.fid_score import calculate_fid_given_paths

from ganrun.errors import GanrunError
from ganrun.evaluation.features.inception import (
    FID_WEIGHTS_NAME,
    FID_WEIGHTS_URL,
    FIDInceptionV3,
    InceptionFeatures,
    fid_weights_path,
    load_fid_inception,
    random_fid_state_dict,
)
from ganrun.evaluation.metrics.frechet import feature_stats, frechet_distance
from ganrun.sampling.images import to_uint8

TOLERANCE = 1e-4  # max abs difference of pool features (values ~0.1-1)


@contextmanager
def pytorch_fid_weights(state: dict[str, torch.Tensor]):
    """pytorch-fid builds its network from `state` instead of downloading the real file."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pfi, "load_state_dict_from_url", lambda *args, **kwargs: state)
        yield


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    sd = random_fid_state_dict(seed=0)
    sd["fc.bias"] = torch.randn(sd["fc.bias"].shape)  # nonzero, to see that logits skip it
    return sd


@pytest.fixture(scope="module")
def ours(state) -> InceptionFeatures:
    return InceptionFeatures(weights=state, batch_size=3)  # batches of 3: splitting is exercised


@pytest.fixture(scope="module")
def theirs(state) -> pfi.InceptionV3:
    with pytorch_fid_weights(state):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def their_pool(net: pfi.InceptionV3, rgb_uint8: torch.Tensor) -> torch.Tensor:
    """pytorch-fid on images as its loader gives them: RGB, ToTensor (/255)."""
    with torch.no_grad():
        return net(rgb_uint8.float() / 255)[0].flatten(1)


def test_image(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Noise with a per-image contrast and brightness, so images (and features) differ."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, channels, size, size, generator=gen)
    contrast = torch.rand(n, 1, 1, 1, generator=gen)
    offset = torch.rand(n, 1, 1, 1, generator=gen) * (1 - contrast)
    return ((noise * contrast + offset) * 255).round().to(torch.uint8)


test_image.__test__ = False  # a helper, not a test


def test_state_dict_keys_are_pytorch_fids(state):
    """pytorch-fid's fid_inception_v3() loads our dict strictly, and ours loads its dict."""
    with pytorch_fid_weights(state):
        torchvision_layout = pfi.fid_inception_v3()  # calls load_state_dict(strict=True)
    their_state = torchvision_layout.state_dict()
    assert set(their_state) == set(FIDInceptionV3().state_dict())
    FIDInceptionV3().load_state_dict(their_state, strict=True)


def test_random_weights_give_informative_features(ours):
    pool, logits = ours(test_image(4, 3, 32, seed=1))
    assert pool.shape == (4, 2048) and logits.shape == (4, 1008)
    assert pool.dtype == logits.dtype == torch.float32
    assert 0.05 < float(pool.mean()) < 10
    assert float(pool.std(dim=0).mean()) > 0.02  # the features vary across images
    assert float(torch.pdist(pool).min()) > 0.1  # no two images share features


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 17)])
def test_pool_features_match_pytorch_fid(ours, theirs, channels, size):
    images = test_image(4, channels, size, seed=channels + size)
    pool, _ = ours(images)
    rgb = images.expand(-1, 3, -1, -1)  # what PIL's convert("RGB") makes of a grey PNG
    torch.testing.assert_close(pool, their_pool(theirs, rgb), rtol=0, atol=TOLERANCE)


def test_float_images_are_quantised_like_saved_pngs(ours, theirs):
    gen = torch.Generator().manual_seed(5)
    samples = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1  # a generator's [-1, 1] output
    pool, _ = ours(samples)
    torch.testing.assert_close(pool, their_pool(theirs, to_uint8(samples)), rtol=0, atol=TOLERANCE)


def test_logits_are_the_unbiased_fc_of_torchvision_layout(ours, state):
    """Logits = pool @ fc.weight^T (the original IS code); checked on the full torchvision net."""
    images = test_image(1, 3, 32, seed=6)
    with pytorch_fid_weights(state):
        full = pfi.fid_inception_v3().eval()
    x = torch.nn.functional.interpolate(
        images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        expected = full(2 * x - 1) - state["fc.bias"]
    _, logits = ours(images)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def write_pngs(images: torch.Tensor, folder: Path) -> None:
    folder.mkdir()
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(folder / f"{i:03d}.png")


@pytest.mark.slow
def test_fid_matches_pytorch_fid_on_png_folders(tmp_path, state):
    """Whole FID: ours from in-memory uint8 vs pytorch-fid's CLI path on the same PNGs.

    Slow: ~50 Inception passes per tool and scipy's sqrtm of a 2048 x 2048 product (minutes on
    2 loaded CPU cores).
    """
    real, fake = test_image(24, 3, 32, seed=7), test_image(24, 3, 32, seed=8).flip(-1) // 2
    write_pngs(real, tmp_path / "real")
    write_pngs(fake, tmp_path / "fake")
    with pytorch_fid_weights(state):
        expected = calculate_fid_given_paths(
            [str(tmp_path / "real"), str(tmp_path / "fake")], 5, "cpu", 2048, num_workers=0
        )
    extractor = InceptionFeatures(weights=state, batch_size=8)
    ours_fid = frechet_distance(
        *feature_stats(extractor(real)[0]), *feature_stats(extractor(fake)[0])
    )
    assert expected > 0.1
    assert ours_fid == pytest.approx(expected, rel=1e-3)


# --- weights files ----------------------------------------------------------------------------


def test_loads_a_weights_file_strictly(tmp_path, state):
    path = tmp_path / FID_WEIGHTS_NAME
    torch.save(state, path)
    net = load_fid_inception(path)
    for key, value in state.items():
        torch.testing.assert_close(net.state_dict()[key], value, rtol=0, atol=0)


def test_weights_from_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path))
    (tmp_path / FID_WEIGHTS_NAME).write_bytes(b"")
    assert fid_weights_path(None) == tmp_path / FID_WEIGHTS_NAME


def test_missing_weights_offline_names_file_url_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY"):  # a dead proxy: offline, even in a CI with internet
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(GanrunError) as err:
        InceptionFeatures(weights=None)
    message = str(err.value)
    assert FID_WEIGHTS_NAME in message and FID_WEIGHTS_URL in message
    assert str(tmp_path / FID_WEIGHTS_NAME) in message and "metrics.fid.weights" in message
    assert not list(tmp_path.iterdir())  # no partial download left behind


def test_missing_weights_path(tmp_path):
    with pytest.raises(GanrunError, match=f"metrics.fid.weights=.*no such file.*{FID_WEIGHTS_URL}"):
        fid_weights_path(str(tmp_path / "nope.pth"))


def test_corrupt_weights_file(tmp_path):
    path = tmp_path / FID_WEIGHTS_NAME
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(GanrunError, match="could not read the FID Inception weights"):
        InceptionFeatures(weights=str(path))


def test_weights_of_another_network(state):
    wrong = dict(state)
    del wrong["fc.bias"]
    with pytest.raises(GanrunError, match="not the FID Inception-v3"):
        load_fid_inception(wrong)


# --- bad images -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.zeros(2, 3, 8), "shape"),
        (torch.zeros(2, 2, 8, 8), "C = 1 or 3"),
        (torch.zeros(2, 4, 8, 8, dtype=torch.uint8), "C = 1 or 3"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "torch.int32"),
        (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), "0 images"),
    ],
)
def test_bad_images(ours, images, match):
    with pytest.raises(GanrunError, match=match):
        ours(images)


def test_uint8_and_float_inputs_of_one_picture_agree(ours):
    uint8 = test_image(1, 3, 16, seed=9)
    as_float = uint8.float() / 127.5 - 1
    torch.testing.assert_close(ours(uint8), ours(as_float), rtol=0, atol=0)

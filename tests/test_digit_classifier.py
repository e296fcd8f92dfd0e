"""The MNIST digit classifier: shapes, checkpoints, the training script, the trained file."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from conftest import REPO, SHARED_DATA, needs_mnist, write_digit_classifier

from ganrun.atomic_io import atomic_write
from ganrun.data.mnist import MNIST
from ganrun.errors import GanrunError
from ganrun.evaluation.features.digit_classifier import (
    PACKAGED,
    PACKAGED_INFO,
    DigitClassifier,
    checkpoint_bytes,
    default_classifier_path,
    load_digit_classifier,
)

SCRIPT = REPO / "scripts" / "train_digit_classifier.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_digit_classifier", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_script()


@pytest.fixture(scope="module")
def mnist_test() -> MNIST:
    return MNIST(str(SHARED_DATA), "test")


def trained_path():
    """The default checkpoint, relative to the repository (what the script writes from there)."""
    return REPO / default_classifier_path()  # an absolute $GANRUN_CACHE stays as it is


def trained_or_skip() -> DigitClassifier:
    path = trained_path()
    if not path.is_file():
        pytest.skip(f"no trained classifier at {path}; run scripts/train_digit_classifier.py")
    return load_digit_classifier(path)


# ---------------------------------------------------------------------------- network


def test_forward_and_features_shapes():
    """28x28 grey in: 10 logits out, 128-d features; other resolutions are resized to 28."""
    torch.manual_seed(0)
    model = DigitClassifier().eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    assert tuple(model(x).shape) == (5, 10)
    assert tuple(model.features(x).shape) == (5, 128)
    assert model.features(x).min().item() >= 0.0  # after the ReLU
    x32 = torch.rand(4, 1, 32, 32) * 2 - 1
    assert tuple(model(x32).shape) == (4, 10)
    assert tuple(model.predict(x32).shape) == (4,)
    assert 0 <= model.predict(x32).min().item() <= model.predict(x32).max().item() <= 9


def test_logits_are_the_head_of_the_features():
    """forward(x) == head(features(x)): the features are exactly the penultimate layer."""
    torch.manual_seed(0)
    model = DigitClassifier().eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(model(x), model.head(model.features(x)))


def test_rejects_colour_images():
    """3 channels is an error that says to classify each channel separately."""
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*each channel"):
        DigitClassifier()(torch.zeros(2, 3, 28, 28))


# -------------------------------------------------------------------------- checkpoint


def test_missing_checkpoint_names_path_and_script(tmp_path):
    path = tmp_path / "nope" / "digit_classifier.pt"
    with pytest.raises(GanrunError, match="train_digit_classifier.py") as info:
        load_digit_classifier(path)
    assert str(path) in str(info.value)


def test_default_path_prefers_a_retrained_cache_file_else_the_packaged_weights(
    tmp_path, monkeypatch
):
    """No classifier in $GANRUN_CACHE: the packaged fp16 weights load (float32, frozen); one
    written there by the script (or a test) takes precedence."""
    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "cache"))
    assert default_classifier_path() == PACKAGED and PACKAGED.stat().st_size < 1_000_000
    packaged = load_digit_classifier()
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in packaged.parameters())
    info = json.loads(PACKAGED_INFO.read_text())
    assert (
        info["seed"] == 0
        and info["test_accuracy_fp16"] >= 0.99
        and "train_digit_classifier.py" in info["command"]
    )
    write_digit_classifier(tmp_path / "cache")
    assert default_classifier_path() == tmp_path / "cache" / "digit_classifier.pt"
    retrained = load_digit_classifier()
    assert not torch.equal(retrained.head[1].weight, packaged.head[1].weight)


def test_checkpoint_round_trip(tmp_path):
    """checkpoint_bytes + atomic_write -> load_digit_classifier gives the same frozen network."""
    torch.manual_seed(1)
    model = DigitClassifier().eval()
    path = tmp_path / "clf.pt"
    atomic_write(path, checkpoint_bytes(model, test_accuracy=0.5, epochs=1))
    loaded = load_digit_classifier(path)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(loaded(x), model(x))
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["test_accuracy"] == 0.5 and ckpt["epochs"] == 1


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "clf.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(GanrunError, match=r"could not read .*clf\.pt.*train_digit_classifier"):
        load_digit_classifier(path)


# ---------------------------------------------------------------------- training script


def test_translate_shifts_each_image_and_pads_with_background(script):
    """Shifts of up to 1 px: each output is its input moved by one (dy, dx), padded with -1."""
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = script.translate(x, 1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x[0, 0], (1, 1, 1, 1), value=-1.0)
    seen = set()
    for img in out[:, 0]:
        matches = [
            (dy, dx)
            for dy in range(3)
            for dx in range(3)
            if torch.equal(img, padded[dy : dy + 4, dx : dx + 4])
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) >= 7  # 64 draws over 9 shifts
    assert script.translate(x, 0, torch.Generator()) is x


@needs_mnist
def test_tiny_training_run_beats_chance(script, mnist_test):
    """800 images, one epoch: held-out accuracy well above chance (0.1), below perfect."""
    torch.set_num_threads(2)
    model = script.train(
        mnist_test.images[:800],
        mnist_test.labels[:800],
        epochs=1,
        seed=0,
        batch_size=16,
        max_shift=0,
    )
    assert not model.training
    acc = script.accuracy(model, mnist_test.images[5000:6000], mnist_test.labels[5000:6000])
    assert 0.5 < acc < 1.0


def test_script_without_data_fails_cleanly(script, tmp_path, capsys):
    """No MNIST under --root: exit status 2, the dataset's message, nothing written."""
    out = tmp_path / "clf.pt"
    assert script.main(["--root", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "files not found" in err and "train-images-idx3-ubyte.gz" in err
    assert not out.exists()


def test_script_checkpoint_loads_with_weights_only(script, tmp_path):
    """What the script writes (metadata included) passes torch.load(weights_only=True)."""
    torch.manual_seed(2)
    model = DigitClassifier().eval()
    out = tmp_path / "sub" / "clf.pt"
    script.write_checkpoint(out, model, test_accuracy=0.9912, epochs=3, seed=5, train_seconds=1.5)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["test_accuracy"] == 0.9912 and ckpt["epochs"] == 3 and ckpt["seed"] == 5
    assert ckpt["torch_version"] == str(torch.__version__)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(load_digit_classifier(out)(x), model(x))
    assert [p.name for p in out.parent.iterdir()] == ["clf.pt"]  # no temp file left


# ------------------------------------------------------------------ the trained file


@needs_mnist
def test_trained_classifier_accuracy(mnist_test):
    """The default classifier (the packaged weights, or a retrained cache file): >= 99%
    recorded, >= 98.5% on 2000 test images, and the two agree to 1%."""
    model = trained_or_skip()
    path = trained_path()
    if path == PACKAGED:  # the packaged fp16 weights: their record beside them
        recorded = json.loads(PACKAGED_INFO.read_text())["test_accuracy_fp16"]
    else:
        recorded = torch.load(path, weights_only=True)["test_accuracy"]
    ckpt = {"test_accuracy": recorded}
    assert 0.99 <= ckpt["test_accuracy"] <= 1.0
    x = mnist_test.images[:2000].float() / 127.5 - 1
    acc = (model.predict(x) == mnist_test.labels[:2000]).double().mean().item()
    assert 0.985 <= acc <= 1.0
    assert math.isclose(acc, ckpt["test_accuracy"], abs_tol=0.01)

"""Datasets: toy mixtures, reproducible batches, the embedded digits, IDX / CIFAR files, folders."""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, compose_cfg, needs_cifar10, needs_mnist
from PIL import Image

from ganrun.build import build_data
from ganrun.data.base import batch_indices
from ganrun.data.cifar import CIFAR10
from ganrun.data.digits import Digits
from ganrun.data.folder import ImageFolder
from ganrun.data.mnist import MNIST, FashionMNIST, read_idx
from ganrun.data.toy import Grid, Ring
from ganrun.errors import GanrunError

S = math.sqrt(0.5)
RING8_MEANS = [(1, 0), (S, S), (0, 1), (-S, S), (-1, 0), (-S, -S), (0, -1), (S, -S)]
GRID25_MEANS = [(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)]
# UCI digits: images per class 0..9 (sklearn's copy)
DIGITS_PER_CLASS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
MNIST_TRAIN_PER_CLASS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_PER_CLASS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def take(iterator, n: int) -> list:
    return [next(iterator) for _ in range(n)]


# ------------------------------------------------------------------- toy mixtures


def test_ring8_means():
    """ring8: 8 modes at radius 1, every 45 degrees starting on the x axis."""
    ring = build_data(compose_cfg("dataset=ring8"))
    torch.testing.assert_close(ring.means, torch.tensor(RING8_MEANS, dtype=torch.float32))
    torch.testing.assert_close(ring.means.norm(dim=1), torch.ones(8))


def test_grid25_means():
    """grid25: 25 modes on {-4,-2,0,2,4}^2."""
    grid = build_data(compose_cfg("dataset=grid25"))
    got = sorted(map(tuple, grid.means.tolist()))
    assert len(got) == 25
    torch.testing.assert_close(
        torch.tensor(got), torch.tensor(sorted(GRID25_MEANS), dtype=torch.float32)
    )


def test_mixture_arguments():
    """Ring(n_modes, radius) and Grid(side, spacing) place their modes as documented."""
    torch.testing.assert_close(
        Ring(n_modes=4, radius=2.0).means,
        torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]]),
        atol=1e-6,
        rtol=0,
    )
    got = sorted(map(tuple, Grid(side=3, spacing=1.0).means.tolist()))
    assert got == [(float(x), float(y)) for x in (-1, 0, 1) for y in (-1, 0, 1)]


@pytest.mark.parametrize(("name", "n"), [("ring8", 4000), ("grid25", 8000)])
def test_mixture_samples_match_configured_std_and_weights(name, n):
    """Samples sit around their nearest mode with the configured std; modes are equally likely."""
    cfg = compose_cfg(f"dataset={name}")
    data = build_data(cfg)
    x, labels = next(data.batches(n, seed=0))
    assert labels is None
    assert tuple(x.shape) == (n, 2)
    nearest = torch.cdist(x, data.means).argmin(dim=1)
    residual = x - data.means[nearest]
    std = cfg.dataset.std
    assert 0.95 * std < residual.std().item() < 1.05 * std
    assert -0.1 * std < residual.mean().item() < 0.1 * std
    counts = torch.bincount(nearest, minlength=len(data.means))
    expected = n / len(data.means)
    assert 0.75 * expected < counts.min().item() <= counts.max().item() < 1.25 * expected


# ------------------------------------------------------------------ batch indices


def test_batch_indices_cover_each_index_once_per_epoch():
    """n divisible by the batch size: each epoch is a permutation, and epochs differ."""
    batches = take(batch_indices(12, 4, seed=3), 9)  # 3 epochs of 3 batches
    epochs = [torch.cat(batches[i : i + 3]) for i in (0, 3, 6)]
    for epoch in epochs:
        assert epoch.sort().values.tolist() == list(range(12))
    assert not torch.equal(epochs[0], epochs[1])


def test_batch_indices_drop_the_ragged_tail():
    """n = 10, batch 3: 3 batches per epoch, 9 distinct indices each epoch, all in range."""
    batches = take(batch_indices(10, 3, seed=0), 6)
    assert all(b.shape == (3,) for b in batches)
    for i in (0, 3):
        epoch = torch.cat(batches[i : i + 3])
        assert len(set(epoch.tolist())) == 9
        assert 0 <= epoch.min().item() <= epoch.max().item() <= 9


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_batch_indices_start_is_the_kth_batch(k):
    """start=k resumes exactly: its first batch is batch k of a run from 0 (across epochs too)."""
    from_zero = take(batch_indices(10, 3, seed=5), k + 1)
    torch.testing.assert_close(next(batch_indices(10, 3, seed=5, start=k)), from_zero[k])


def test_batch_indices_batch_larger_than_data():
    """A batch larger than the dataset fails naming the key and the largest allowed value."""
    with pytest.raises(GanrunError, match=r"trainer\.batch_size=11 .*at most 10"):
        next(batch_indices(10, 11, seed=0))


# -------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def test_digits_size_shape_and_classes(digits):
    """The embedded digits: 1797 images of (1, 16, 16), 10 classes with sklearn's counts."""
    assert len(digits) == 1797
    assert digits.shape == (1, 16, 16)
    assert tuple(digits.images.shape) == (1797, 1, 16, 16)
    assert digits.num_classes == 10
    assert torch.bincount(digits.labels).tolist() == DIGITS_PER_CLASS


def test_digits_one_epoch_in_range(digits):
    """A full epoch (3 x 599 = 1797) holds every image once, scaled to exactly [-1, 1]."""
    batches = take(digits.batches(599, seed=0), 3)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.min().item() == -1.0
    assert x.max().item() == 1.0
    assert torch.bincount(y).tolist() == DIGITS_PER_CLASS


def test_digits_native_resolution_values():
    """At 8x8 (no resize) the 0..16 levels map to round(v * 255 / 16): first row of image 0."""
    raw = Digits(resolution=8)
    # sklearn's image 0 (a zero), row 0: 0 0 5 13 9 1 0 0
    assert raw.images[0, 0, 0].tolist() == [0, 0, 80, 207, 143, 16, 0, 0]
    assert raw.labels[0].item() == 0


# ----------------------------------------------------------------- image folders

COLORS = [(20 * i + 5, 250 - 20 * i, 13 * i) for i in range(10)]


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """10 solid-colour 20x24 PNGs: 0-4 in a/, 5-9 in b/."""
    for i, color in enumerate(COLORS):
        folder = tmp_path / "images" / ("a" if i < 5 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 24), color).save(folder / f"{i}.png")
    return tmp_path / "images"


def colour_index(x: torch.Tensor) -> int:
    """Which of COLORS a (3, H, W) batch image in [-1, 1] is (it must be uniform)."""
    pixel = ((x + 1) * 127.5).round()
    rgb = tuple(int(v) for v in pixel[:, 0, 0])
    assert pixel.amin(dim=(1, 2)).tolist() == pixel.amax(dim=(1, 2)).tolist() == list(rgb)
    return COLORS.index(rgb)


def test_image_folder_reads_resizes_and_labels(image_dir):
    """Images come back centre-cropped to the resolution with their colours, labelled by folder."""
    data = ImageFolder(str(image_dir), resolution=16, num_workers=0)
    assert len(data) == 10
    assert data.shape == (3, 16, 16)
    assert data.num_classes == 2
    x, y = next(data.batches(10, seed=0))  # one whole epoch
    assert tuple(x.shape) == (10, 3, 16, 16)
    index = [colour_index(img) for img in x]
    assert sorted(index) == list(range(10))
    assert y.tolist() == [0 if i < 5 else 1 for i in index]


def test_image_folder_single_folder_is_unlabelled(tmp_path):
    """All images in one folder: no classes, batches carry no labels; channels=1 reads grey."""
    for i in range(3):
        Image.new("RGB", (8, 8), (200, 100, 50)).save(tmp_path / f"{i}.png")
    data = ImageFolder(str(tmp_path), resolution=8, channels=1, num_workers=0)
    assert data.num_classes is None
    x, y = next(data.batches(2, seed=0))
    assert y is None
    assert tuple(x.shape) == (2, 1, 8, 8)
    # ITU-R 601 luma: 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2
    grey = (x + 1) * 127.5
    assert 123.5 < grey.min().item() <= grey.max().item() < 125.5


def test_image_folder_errors(tmp_path):
    """No images (empty or missing folder) and unsupported channels fail with the fix."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    for root in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(GanrunError) as err:
            ImageFolder(str(root))
        assert f"dataset.root={root}" in str(err.value)
        assert "no images" in str(err.value)
    with pytest.raises(GanrunError, match=r"dataset\.channels=2"):
        ImageFolder(str(tmp_path / "empty"), channels=2)


# ---------------------------------------------------------------- reproducibility


def _digits(tmp_path):
    return Digits()


def _ring8(tmp_path):
    return Ring()


def _folder(tmp_path):
    for i, color in enumerate(COLORS):
        Image.new("RGB", (12, 12), color).save(tmp_path / f"{i}.png")
    return ImageFolder(str(tmp_path), resolution=8, num_workers=0)


SOURCES = {
    "digits": (_digits, 64, [1, 27, 28, 30]),
    "ring8": (_ring8, 64, [1, 5]),
    "image_folder": (_folder, 3, [1, 3, 4]),
}


def same(a, b) -> None:
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    if a[1] is None or b[1] is None:
        assert a[1] is None and b[1] is None
    else:
        torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_batches_are_reproducible(name, tmp_path):
    """Same (seed, k), same batch; start=k gives batch k; another seed gives other batches."""
    make, batch_size, ks = SOURCES[name]
    data = make(tmp_path)
    run = take(data.batches(batch_size, seed=7), max(ks) + 1)
    again = take(data.batches(batch_size, seed=7), max(ks) + 1)
    for a, b in zip(run, again, strict=True):
        same(a, b)
    for k in ks:
        same(next(data.batches(batch_size, seed=7, start=k)), run[k])
    other = next(data.batches(batch_size, seed=8))
    assert not torch.equal(other[0], run[0][0])
    assert not torch.equal(run[1][0], run[0][0])  # and consecutive batches differ


def test_image_folder_workers_do_not_change_batches(image_dir):
    """DataLoader workers decode in parallel but yield the same batches in the same order."""
    serial = ImageFolder(str(image_dir), resolution=8, num_workers=0, cache=False)
    parallel = ImageFolder(str(image_dir), resolution=8, num_workers=2, cache=False)
    serial_batches, parallel_batches = (
        take(serial.batches(3, 1), 5),
        take(parallel.batches(3, 1), 5),
    )
    for a, b in zip(serial_batches, parallel_batches, strict=True):
        same(a, b)


# ------------------------------------------------------------------- IDX files


def idx_bytes(array: np.ndarray) -> bytes:
    """LeCun's IDX: 0, 0, type 0x08 (uint8), ndim, then each dim as a big-endian int32."""
    return (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(f">{array.ndim}i", *array.shape)
        + array.tobytes()
    )


def write_mnist_layout(root: Path, folder: str = "MNIST", gz: bool = True, split: str = "train"):
    """A tiny dataset of 5 random 28x28 images labelled 0..4 (labels identify the images)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    images[2] = 200  # a uniform image stays uniform under resizing
    labels = np.arange(5, dtype=np.uint8)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for name, array in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        if gz:
            with gzip.open(raw / f"{name}.gz", "wb") as f:
                f.write(idx_bytes(array))
        else:
            (raw / name).write_bytes(idx_bytes(array))
    return images, labels


def test_idx_header_layout():
    """The writer used below produces the documented header for 3 x 28 x 28."""
    header = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))[:16]
    assert header == b"\x00\x00\x08\x03" + b"\x00\x00\x00\x03" + b"\x00\x00\x00\x1c" * 2


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_read_idx_round_trip(tmp_path, gz):
    """read_idx returns the exact array, gzipped or not, for 3-D images and 1-D labels."""
    images, labels = write_mnist_layout(tmp_path, gz=gz)
    raw = tmp_path / "MNIST" / "raw"
    suffix = ".gz" if gz else ""
    np.testing.assert_array_equal(read_idx(raw / f"train-images-idx3-ubyte{suffix}"), images)
    np.testing.assert_array_equal(read_idx(raw / f"train-labels-idx1-ubyte{suffix}"), labels)


@pytest.mark.parametrize(("cls", "folder"), [(MNIST, "MNIST"), (FashionMNIST, "FashionMNIST")])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_layout_loads_synthetic_files(tmp_path, cls, folder, split):
    """MNIST / FashionMNIST read a torchvision-layout folder; batches keep image-label pairs."""
    images, labels = write_mnist_layout(tmp_path, folder, gz=split == "train", split=split)
    data = cls(str(tmp_path), split=split)
    assert len(data) == 5 and data.shape == (1, 28, 28) and data.num_classes == 10
    torch.testing.assert_close(data.images, torch.from_numpy(images).unsqueeze(1), rtol=0, atol=0)
    assert data.labels.tolist() == [0, 1, 2, 3, 4]
    x, y = next(data.batches(5, seed=0))
    expected = torch.from_numpy(images).float()[y].unsqueeze(1) / 127.5 - 1.0
    torch.testing.assert_close(x, expected)


def test_mnist_resolution_resizes(tmp_path):
    """resolution=14 halves the images; a uniform image keeps its value."""
    write_mnist_layout(tmp_path)
    data = MNIST(str(tmp_path), resolution=14)
    assert data.shape == (1, 14, 14)
    assert data.images[2].min().item() == data.images[2].max().item() == 200


# ------------------------------------------------------------------ missing files


@pytest.mark.parametrize(("split", "prefix"), [("train", "train"), ("test", "t10k")])
def test_mnist_missing_files_named(tmp_path, split, prefix):
    """An empty root: the error lists both expected .gz paths of the split and the fix."""
    with pytest.raises(GanrunError) as err:
        MNIST(str(tmp_path), split=split)
    message = str(err.value)
    for name in (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"):
        assert str(tmp_path / "MNIST" / "raw" / name) in message
    assert f"dataset.root={tmp_path}" in message


def test_mnist_missing_labels_only(tmp_path):
    """Images present but labels missing still fails before reading anything."""
    write_mnist_layout(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(GanrunError, match=r"train-labels-idx1-ubyte\.gz"):
        MNIST(str(tmp_path))


def test_cifar10_missing_files_named(tmp_path):
    """An empty root: the error lists every CIFAR-10 python-version file."""
    with pytest.raises(GanrunError) as err:
        CIFAR10(str(tmp_path))
    message = str(err.value)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    for name in names:
        assert str(tmp_path / "cifar-10-batches-py" / name) in message
    assert "dataset=cifar10" in message


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST, CIFAR10])
def test_bad_split(tmp_path, cls):
    """split=val is refused (before looking for files), naming the valid splits."""
    with pytest.raises(GanrunError, match=r"dataset\.split='val' .*use train or test"):
        cls(str(tmp_path), split="val")


# ------------------------------------------------------------------ shared data


def listing(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    )


@pytest.fixture(scope="module")
def shared_before() -> list[tuple[str, int, int]]:
    return listing(SHARED_DATA)


@pytest.fixture(scope="module")
def mnist_train(shared_before) -> MNIST:
    return MNIST(str(SHARED_DATA), split="train")


@pytest.fixture(scope="module")
def mnist_test(shared_before) -> MNIST:
    return MNIST(str(SHARED_DATA), split="test")


@pytest.fixture(scope="module")
def cifar_test(shared_before) -> CIFAR10:
    return CIFAR10(str(SHARED_DATA), split="test")


@needs_mnist
def test_mnist_shared_train(mnist_train):
    """MNIST train: 60,000 images (1, 28, 28), the official class counts, first label 5."""
    assert len(mnist_train) == 60000
    assert tuple(mnist_train.images.shape) == (60000, 1, 28, 28)
    assert mnist_train.shape == (1, 28, 28)
    assert torch.bincount(mnist_train.labels).tolist() == MNIST_TRAIN_PER_CLASS
    assert mnist_train.labels[:3].tolist() == [5, 0, 4]
    assert (mnist_train.images.min().item(), mnist_train.images.max().item()) == (0, 255)


@needs_mnist
def test_mnist_shared_test(mnist_test):
    """MNIST test: 10,000 images (1, 28, 28), the official class counts, first label 7."""
    assert len(mnist_test) == 10000
    assert tuple(mnist_test.images.shape) == (10000, 1, 28, 28)
    assert torch.bincount(mnist_test.labels).tolist() == MNIST_TEST_PER_CLASS
    assert mnist_test.labels[:3].tolist() == [7, 2, 1]
    x, _ = next(mnist_test.batches(512, seed=0))
    assert x.min().item() == -1.0 and x.max().item() == 1.0


@needs_mnist
def test_mnist_leaves_shared_folder_untouched(mnist_train, mnist_test, shared_before):
    """Reading MNIST writes nothing next to the shared files (no extraction, no processed/)."""
    assert listing(SHARED_DATA) == shared_before


@needs_cifar10
def test_cifar10_shared_test(cifar_test, shared_before):
    """CIFAR-10 test: 10,000 x (3, 32, 32), 1,000 per class, the official first labels."""
    assert len(cifar_test) == 10000
    assert tuple(cifar_test.images.shape) == (10000, 3, 32, 32)
    assert cifar_test.shape == (3, 32, 32) and cifar_test.num_classes == 10
    assert torch.bincount(cifar_test.labels).tolist() == [1000] * 10
    assert cifar_test.labels[:5].tolist() == [3, 8, 8, 0, 6]  # cat ship ship airplane frog
    assert listing(SHARED_DATA) == shared_before


@needs_cifar10
def test_cifar10_shared_train(shared_before):
    """CIFAR-10 train (all five batches): 50,000 x (3, 32, 32), 5,000 per class."""
    data = CIFAR10(str(SHARED_DATA), split="train")
    assert tuple(data.images.shape) == (50000, 3, 32, 32)
    assert torch.bincount(data.labels).tolist() == [5000] * 10
    assert listing(SHARED_DATA) == shared_before


def test_digits_read_without_sklearn_equal_load_digits():
    """The csv inside scikit-learn, read directly, is exactly load_digits' images and labels."""
    import numpy as np
    from sklearn.datasets import load_digits

    from ganrun.data.digits import digits_csv, load_digits_arrays

    assert digits_csv() is not None
    images, labels = load_digits_arrays()
    bunch = load_digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)


def test_image_folder_cache_gives_the_decoded_batches_and_is_reused(image_dir, monkeypatch):
    """cache=true: the batches, preview and reference images equal those decoded per batch
    (cache=false), bit for bit; a second open maps the entry without decoding anything; a
    file touched since (new mtime) or another resolution gets a new entry."""
    from ganrun.data import decoded_cache

    fresh = ImageFolder(str(image_dir), resolution=8, num_workers=0, cache=False)
    cached = ImageFolder(str(image_dir), resolution=8, num_workers=0)
    assert cached.images is not None and cached.images.shape == (len(fresh), 3, 8, 8)
    for a, b in zip(take(fresh.batches(3, 1, start=2), 4), take(cached.batches(3, 1, start=2), 4)):
        same(a, b)
    assert torch.equal(fresh.preview(4), cached.preview(4))
    assert torch.equal(fresh.real_images(5, seed=2), cached.real_images(5, seed=2))
    entries = sorted((decoded_cache.cache_dir() / "image_folder").glob("*.npy"))
    assert len(entries) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    with monkeypatch.context() as patch:
        patch.setattr(decoded_cache, "build", no_decoding)
        again = ImageFolder(str(image_dir), resolution=8, num_workers=0)
        same(next(again.batches(3, 1)), next(cached.batches(3, 1)))
    first = sorted(image_dir.rglob("*.png"))[0]
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    ImageFolder(str(image_dir), resolution=8, num_workers=0)
    ImageFolder(str(image_dir), resolution=4, num_workers=0)
    assert len(sorted((decoded_cache.cache_dir() / "image_folder").glob("*.npy"))) == 3

"""Translation datasets: pairs stay aligned under crop and flip, batches are pure functions of
(seed, k), direction swaps the domains, and each derived task's pixels match a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SHARED_DATA, needs_cifar10, needs_mnist
from PIL import Image
from torch.testing import assert_close

from ganrun.build import build_data
from ganrun.data.base import from_uint8
from ganrun.data.colored_mnist import (
    ColoredMNIST,
    ColoredMNISTPair,
    classify_colour,
    colorize,
    digit_ink,
    other_domains,
    palette_tensor,
)
from ganrun.data.pair_transforms import SharedCropFlip, centre_crop, crop_windows
from ganrun.data.tasks import down_up, grey_to_rgb, mask_centre, sobel_edges, to_grey
from ganrun.data.translation import PairedTensors, TestSet, TranslationData
from ganrun.errors import GanrunError

COLORS = {"red": [200, 30, 30], "green": [30, 150, 50], "blue": [30, 60, 200]}


def pattern(n: int, c: int, h: int, w: int) -> torch.Tensor:
    """uint8 images whose every pixel is distinct within an image: (i * 7 + y * w + x) % 200."""
    y = torch.arange(h).view(1, 1, h, 1)
    x = torch.arange(w).view(1, 1, 1, w)
    i = torch.arange(n).view(n, 1, 1, 1)
    ch = torch.arange(c).view(1, c, 1, 1)
    return ((i * 7 + ch * 3 + y * w + x) % 200).to(torch.uint8)


# ------------------------------------------------------------------ shared crop and flip


def test_shared_crop_flip_keeps_pairs_aligned_and_matches_its_draws():
    a = pattern(32, 1, 10, 12)
    b = (a.repeat(1, 3, 1, 1) + 50).to(torch.uint8)  # b = a + 50 in every channel
    t = SharedCropFlip(crop=6, flip=True, seed=3)
    ca, cb = t(a, b, k=5)
    assert ca.shape == (32, 1, 6, 6) and cb.shape == (32, 3, 6, 6)
    assert torch.equal(cb, (ca.repeat(1, 3, 1, 1) + 50).to(torch.uint8))  # still aligned
    top, left, flip = t.draws(32, 10, 12, 5)
    assert 0 < int(flip.sum()) < 32  # both flipped and unflipped pairs in the batch
    for i in range(32):
        window = a[i, :, top[i] : top[i] + 6, left[i] : left[i] + 6]
        expected = window.flip(-1) if flip[i] else window
        assert torch.equal(ca[i], expected)
    # a pure function of (seed, k): the same batch again, another for another k
    assert torch.equal(t(a, b, k=5)[0], ca)
    assert not torch.equal(t(a, b, k=6)[0], ca)


def test_crop_windows_and_centre_crop_by_hand():
    x = pattern(2, 1, 5, 5)
    out = crop_windows(x, torch.tensor([0, 2]), torch.tensor([1, 0]), 3)
    assert torch.equal(out[0], x[0, :, 0:3, 1:4])
    assert torch.equal(out[1], x[1, :, 2:5, 0:3])
    assert torch.equal(centre_crop(x, 3), x[..., 1:4, 1:4])


def test_crop_that_does_not_fit_names_the_key():
    with pytest.raises(GanrunError, match=r"dataset\.crop=9 does not fit the 8x8"):
        SharedCropFlip(9, True).check(8, 8)


# ------------------------------------------------------------------ PairedTensors


def test_paired_batches_are_aligned_deterministic_and_resume_exactly():
    a = pattern(12, 1, 4, 4)
    b = (255 - a).to(torch.uint8)
    data = PairedTensors(a, b)
    assert isinstance(data, TranslationData)
    first = [next(iter(data.batches(4, seed=1))) for _ in range(2)]
    assert torch.equal(first[0][0], first[1][0])
    stream = data.batches(4, seed=1)
    batches = [next(stream) for _ in range(5)]
    for xa, xb in batches:
        assert_close(xb, -xa)  # from_uint8(255 - u) = -from_uint8(u)
    resumed = next(data.batches(4, seed=1, start=4))
    assert torch.equal(resumed[0], batches[4][0]) and torch.equal(resumed[1], batches[4][1])
    other = next(data.batches(4, seed=2))
    assert not torch.equal(other[0], batches[0][0])


def test_unpaired_streams_are_independent():
    a = pattern(8, 1, 2, 2)  # image i's first pixel is 7 i: it names the image
    data = PairedTensors(a, a.clone(), paired=False)
    xa, xb = next(data.batches(8, seed=0))
    ia = ((xa[:, 0, 0, 0] + 1) * 127.5).round().long() // 7
    ib = ((xb[:, 0, 0, 0] + 1) * 127.5).round().long() // 7
    assert sorted(ia.tolist()) == list(range(8)) == sorted(ib.tolist())
    assert not torch.equal(ia, ib)  # the two domains are shuffled apart


def test_direction_btoa_swaps_everything():
    a, b = pattern(6, 1, 4, 4), pattern(6, 3, 4, 4)
    fwd, back = PairedTensors(a, b), PairedTensors(a, b, direction="BtoA")
    assert (fwd.source_shape, fwd.shape) == ((1, 4, 4), (3, 4, 4))
    assert (back.source_shape, back.shape) == ((3, 4, 4), (1, 4, 4))
    xa, xb = next(fwd.batches(3, seed=0))
    ya, yb = next(back.batches(3, seed=0))
    assert torch.equal(ya, xb) and torch.equal(yb, xa)
    assert torch.equal(back.test_set().a, b) and torch.equal(back.test_set().b, a)
    with pytest.raises(GanrunError, match=r"dataset\.direction='AB'.*AtoB.*BtoA"):
        PairedTensors(a, b, direction="AB")


def test_test_set_head_is_a_fixed_prefix():
    a = pattern(5, 1, 2, 2)
    ts = TestSet(a, a, [f"{i}.png" for i in range(5)], a_labels=torch.arange(5))
    head = ts.head(3)
    assert len(head) == 3 and head.names == ["0.png", "1.png", "2.png"]
    assert torch.equal(head.a_labels, torch.arange(3)) and torch.equal(head.b, a[:3])
    assert ts.head(None) is ts and ts.head(10) is ts


# ------------------------------------------------------------------ derived tasks by hand


def test_to_grey_and_grey_to_rgb_by_hand():
    rgb = torch.tensor([255, 0, 0, 0, 255, 0, 10, 20, 30], dtype=torch.uint8).view(3, 3, 1, 1)
    rgb = rgb.permute(1, 0, 2, 3).contiguous().view(1, 3, 3, 1)  # pixels red, green, (10,20,30)
    grey = to_grey(rgb)
    expected = [round(0.299 * 255), round(0.587 * 255), round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)]
    assert grey.flatten().tolist() == expected
    x = torch.linspace(-1, 1, 4).view(1, 1, 2, 2)
    assert torch.equal(grey_to_rgb(x), x.repeat(1, 3, 1, 1))


def test_mask_centre_by_hand():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    m = mask_centre(x, 0.5)
    expected = torch.zeros(8, 8, dtype=torch.uint8)
    expected[2:6, 2:6] = 128
    assert torch.equal(m[0, 0], expected)


def test_down_up_keeps_a_flat_image_and_refuses_a_bad_factor():
    flat = torch.full((2, 3, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(down_up(flat, 4), flat)
    with pytest.raises(GanrunError, match=r"dataset\.factor=3 does not divide the 8x8"):
        down_up(flat, 3)


def test_sobel_edges_of_a_vertical_step_by_hand():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    x[..., 2:] = 100  # a step between columns 1 and 2
    edges = sobel_edges(x)
    # gx = (1 + 2 + 1) * 100 = 400 on both sides of the step, 0 elsewhere; scaled to 255
    expected = torch.zeros(4, 4, dtype=torch.uint8)
    expected[:, 1:3] = 255
    assert torch.equal(edges[0, 0], expected)
    assert torch.equal(
        sobel_edges(torch.full((1, 1, 4, 4), 9, dtype=torch.uint8)),
        torch.zeros(1, 1, 4, 4, dtype=torch.uint8),
    )


@pytest.mark.parametrize(
    ("task", "baseline"), [("superres", "bicubic"), ("inpainting", "masked"), ("edges", "copy")]
)
def test_derived_task_on_digits(task, baseline, make_cfg):
    data = build_data(
        make_cfg(f"dataset={task}", "dataset@dataset.source=digits", "dataset.test_size=50")
    )
    assert data.shape == data.source_shape == (1, 16, 16)
    assert data.paired and data.num_classes is None and data.digits
    assert list(data.baselines()) == [baseline]
    ts = data.test_set()
    assert len(ts) == 50 and ts.a.dtype == torch.uint8
    # the pairs are degrade(b), b: rebuilt by hand from the test targets
    assert torch.equal(ts.a, data.degrade(ts.b))
    xa, xb = next(data.batches(8, seed=0))
    assert torch.equal(xa, from_uint8(data.degrade(((xb + 1) * 127.5).round().to(torch.uint8))))
    again = next(data.batches(8, seed=0))
    assert torch.equal(again[0], xa)


def test_colorization_refuses_grey_sources(make_cfg):
    with pytest.raises(
        GanrunError, match=r"colorization needs colour images.*dataset@dataset.source=cifar10"
    ):
        build_data(make_cfg("dataset=colorization", "dataset@dataset.source=digits"))


def test_derived_task_btoa_has_only_a_copy_baseline(make_cfg):
    data = build_data(
        make_cfg("dataset=superres", "dataset@dataset.source=digits", "dataset.direction=BtoA")
    )
    assert list(data.baselines()) == ["copy"]
    ts = data.test_set()
    assert torch.equal(ts.b, down_up(ts.a, 4))  # the full image is now the source


@needs_cifar10
def test_colorization_on_cifar10_test_split(make_cfg):
    cfg = make_cfg(
        "dataset=colorization",
        f"dataset.source.root='{SHARED_DATA}'",
        "dataset.source.split=test",
        "dataset.test_size=20",
    )
    data = build_data(cfg)
    assert (data.source_shape, data.shape) == ((1, 32, 32), (3, 32, 32))
    ts = data.test_set()
    assert torch.equal(ts.a, to_grey(ts.b)) and len(ts) == 20
    assert cfg.metrics.features._target_.endswith("InceptionFeatures")


# ------------------------------------------------------------------ folders


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.permute(1, 2, 0).numpy()).save(path)


def test_paired_folder_separate_and_aligned_keep_pairs(tmp_path, make_cfg):
    imgs = pattern(4, 3, 8, 8)
    for i, img in enumerate(imgs):
        save(tmp_path / "sep" / "A" / f"p{i}.png", img)
        save(tmp_path / "sep" / "B" / f"p{i}.png", (255 - img).to(torch.uint8))
        save(tmp_path / "ali" / f"p{i}.png", torch.cat([img, (255 - img).to(torch.uint8)], dim=2))
    for layout, root in (("separate", "sep"), ("aligned", "ali")):
        cfg = make_cfg(
            "dataset=paired_folder",
            f"dataset.root='{tmp_path / root}'",
            f"dataset.layout={layout}",
            "dataset.load_size=8",
            "dataset.crop=6",
            "dataset.num_workers=0",
        )
        data = build_data(cfg)
        assert data.shape == data.source_shape == (3, 6, 6)
        ts = data.test_set()
        assert ts.names == [f"p{i}.png" for i in range(4)]
        assert torch.equal(ts.a, centre_crop(imgs, 6))
        assert torch.equal(ts.b, (255 - ts.a).to(torch.uint8))
        for _ in range(3):
            xa, xb = next(data.batches(4, seed=0))
            assert_close(xb, -xa)  # crop and flip shared by A and B


def test_paired_folder_names_unmatched_files(tmp_path, make_cfg):
    img = pattern(1, 3, 8, 8)[0]
    save(tmp_path / "A" / "x.png", img)
    save(tmp_path / "B" / "y.png", img)
    cfg = make_cfg("dataset=paired_folder", f"dataset.root='{tmp_path}'", "dataset.num_workers=0")
    with pytest.raises(GanrunError, match=r"only in A: \['x.png'\], only in B: \['y.png'\]"):
        build_data(cfg)


def test_unpaired_folder_layout(tmp_path, make_cfg):
    imgs = pattern(6, 3, 8, 8)
    for part, idx in (("trainA", [0, 1, 2]), ("trainB", [3, 4]), ("testA", [5]), ("testB", [0, 3])):
        for i in idx:
            save(tmp_path / part / f"{part}{i}.png", imgs[i])
    overrides = ("dataset.load_size=8", "dataset.crop=8", "dataset.num_workers=0")
    data = build_data(make_cfg("dataset=unpaired_folder", f"dataset.root='{tmp_path}'", *overrides))
    assert not data.paired and len(data) == 3
    ts = data.test_set()
    assert ts.names == ["testA5.png"] and len(ts.b) == 2
    assert torch.equal(data.real_images(10), ts.b)  # FID reference: the target test images
    back = build_data(
        make_cfg(
            "dataset=unpaired_folder",
            f"dataset.root='{tmp_path}'",
            "dataset.direction=BtoA",
            *overrides,
        )
    )
    assert back.test_set().names == ["testB0.png", "testB3.png"]
    (tmp_path / "testB" / "testB0.png").unlink()
    (tmp_path / "testB" / "testB3.png").unlink()
    (tmp_path / "testB").rmdir()
    with pytest.raises(GanrunError, match=r"lacks testB; CycleGAN's layout"):
        build_data(make_cfg("dataset=unpaired_folder", f"dataset.root='{tmp_path}'", *overrides))


# ------------------------------------------------------------------ coloured MNIST


def test_colorize_and_the_exact_readers():
    names, palette = palette_tensor(COLORS)
    assert names == ["red", "green", "blue"]
    digits = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    digits[:, :, 8:20, 12:16] = 255  # a bar of full ink
    digits[:, :, 20:22, 12:16] = 102  # and some at 40% ink
    domains = torch.tensor([2, 0, 1])
    x = colorize(digits, palette, domains)
    assert x[0, :, 0, 0].tolist() == [30, 60, 200]  # background: blue
    assert x[1, :, 10, 13].tolist() == [255, 255, 255]  # ink: white
    # 40% ink on red: 200 * 0.6 + 255 * 0.4 = 222, 30 * 0.6 + 102 = 120
    assert x[1, :, 20, 12].tolist() == [222, 120, 120]
    assert torch.equal(classify_colour(x, palette), domains)
    assert torch.equal(classify_colour(from_uint8(x), palette), domains)
    ink = digit_ink(x)
    assert_close(ink, from_uint8(digits), atol=2 / 255, rtol=0)
    targets = other_domains(torch.tensor([0, 1, 2] * 20), 3, seed=0)
    assert (targets != torch.tensor([0, 1, 2] * 20)).all() and set(targets.tolist()) == {0, 1, 2}


def test_palette_errors_name_the_key():
    with pytest.raises(
        GanrunError, match=r"dataset\.colors\.white=\[250, 250, 250\] is too close to white"
    ):
        palette_tensor({"red": [200, 0, 0], "white": [250, 250, 250]})
    with pytest.raises(GanrunError, match=r"at least 2"):
        palette_tensor({"red": [200, 0, 0]})


@needs_mnist
def test_colored_mnist_domains_and_exact_targets():
    data = ColoredMNIST(COLORS, root=str(SHARED_DATA), split="test", test_size=200)
    assert data.num_classes == 3 and data.shape == (3, 28, 28) and data.domains == list(COLORS)
    x, dom = next(data.batches(16, seed=0))
    assert torch.equal(classify_colour(x, data.palette), dom)
    ts = data.test_set()
    assert len(ts) == 200 and (ts.b_domains != ts.a_domains).all()
    assert torch.equal(classify_colour(ts.a, data.palette), ts.a_domains)
    assert torch.equal(classify_colour(ts.b, data.palette), ts.b_domains)
    # b is the same digit: its ink equals a's
    assert_close(digit_ink(ts.a), digit_ink(ts.b), atol=2 / 255, rtol=0)
    again = ColoredMNIST(COLORS, root=str(SHARED_DATA), split="test", test_size=200)
    assert torch.equal(again.test_set().a, ts.a) and torch.equal(again.labels, data.labels)


@needs_mnist
def test_colored_mnist_pair_is_unpaired_and_disjoint():
    data = ColoredMNISTPair(
        COLORS, "red", "blue", root=str(SHARED_DATA), split="test", test_size=100
    )
    assert not data.paired and len(data) == 5_000  # the even half of MNIST's 10,000 test digits
    ts = data.test_set()
    assert len(ts) == 100 and len(ts.b) == 100
    assert (classify_colour(ts.a, data.palette) == 0).all()
    assert (classify_colour(ts.b, data.palette) == 2).all()
    assert (ts.b_domains == 2).all()
    with pytest.raises(
        GanrunError, match=r"dataset\.b=pink is not one of dataset\.colors: red, green, blue"
    ):
        ColoredMNISTPair(COLORS, "red", "pink", root=str(SHARED_DATA), split="test")


@needs_cifar10
def test_cifar10_pair_classes(make_cfg):
    root = f"dataset.root='{SHARED_DATA}'"
    data = build_data(make_cfg("dataset=cifar10_pair", root, "dataset.split=test"))
    assert len(data) == 1000 and len(data.test_set()) == 1000 and len(data.test_set().b) == 1000
    with pytest.raises(
        GanrunError, match=r"dataset\.a=zebra is not a CIFAR-10 class; use one of airplane"
    ):
        build_data(
            make_cfg("dataset=cifar10_pair", f"dataset.root='{SHARED_DATA}'", "dataset.a=zebra")
        )


def test_sobel_peak_scaling_constant():
    # the scale is per image: two images with steps of 100 and 10 both reach 255
    x = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    x[0, ..., 2:] = 100
    x[1, ..., 2:] = 10
    assert sobel_edges(x).amax(dim=(1, 2, 3)).tolist() == [255, 255]
    assert math.isclose(float(sobel_edges(x)[1].float().mean()), 255 * 8 / 16)

"""Coloured MNIST: white MNIST digits on coloured backgrounds, the colours being the domains.

Each pixel is bg * (1 - m) + white * m, with m the digit's ink (the MNIST grey level / 255)
and bg the image's domain colour from `colors` (name: RGB). Domains are drawn once per image
from `seed` (a fixed function of the split and the seed), so the data are the same in every
run. Two datasets share it:

- `ColoredMNIST` (StarGAN): yields `(x, domain)` like a labelled dataset, num_classes = the
  number of colours. Its test set asks each test digit for another colour (fixed, from the
  seed) and holds the exact answer as b: the same digit on that colour.
- `ColoredMNISTPair` (CycleGAN): two colours as unpaired domains A (`a`) and B (`b`), made
  from disjoint halves of the digits (even / odd indices), so no pair is ever shown.

Evaluation uses two exact readers of these images (exact on the data, and simple enough to be
trusted on a translator's output):
- `classify_colour`: the per-channel median of the border pixels (a frame of R // 14 px;
  MNIST digits sit in the central 20 x 20 of 28 x 28, so the frame is background), then the
  nearest palette colour (Euclidean RGB);
- `digit_ink`: m = |x - bg| / |white - bg| per pixel with that median bg, back to a white
  digit on black for the digit classifier.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganrun.data.base import InMemoryImages, mixed_seed
from ganrun.data.files import check_split
from ganrun.data.mnist import MNIST
from ganrun.data.translation import PairedTensors, TestSet, check_direction
from ganrun.errors import GanrunError

WHITE = 255.0


def palette_tensor(colors: dict[str, Any]) -> tuple[list[str], Tensor]:
    """(names, (D, 3) float RGB) from the `colors` mapping, checked."""
    if len(colors) < 2:
        raise GanrunError(
            f"dataset.colors has {len(colors)} colour(s); domains need at least 2 (name: [r, g, b])."
        )
    names, rows = [], []
    for name, rgb in colors.items():
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise GanrunError(
                f"dataset.colors.{name}={list(rgb)} is not an RGB colour; give three values in "
                f"0..255, e.g. [220, 40, 40]."
            )
        if sum((WHITE - v) ** 2 for v in rgb) < 60.0**2:
            raise GanrunError(
                f"dataset.colors.{name}={list(rgb)} is too close to white: the digits are white, "
                f"so they would vanish; pick a darker or more saturated colour."
            )
        names.append(str(name))
        rows.append([float(v) for v in rgb])
    return names, torch.tensor(rows)


def colorize(digits: Tensor, palette: Tensor, domains: Tensor) -> Tensor:
    """uint8 grey digits (N, 1, H, W) -> uint8 (N, 3, H, W): white ink on palette[domains]."""
    m = digits.float() / 255.0
    bg = palette[domains].view(-1, 3, 1, 1)
    return (bg * (1.0 - m) + WHITE * m).round().clamp(0, 255).to(torch.uint8)


def to_255(images: Tensor) -> Tensor:
    """uint8 or [-1, 1] float images as float 0..255."""
    return images.float() if images.dtype == torch.uint8 else (images.float() + 1.0) * 127.5


def border_colour(images: Tensor) -> Tensor:
    """Per-channel median of each image's border frame (R // 14 px wide), (N, 3) in 0..255."""
    x = to_255(images)
    w = max(1, x.shape[-1] // 14)
    frame = torch.ones(x.shape[-2:], dtype=torch.bool)
    frame[w:-w, w:-w] = False
    return x[..., frame].median(dim=-1).values


def classify_colour(images: Tensor, palette: Tensor) -> Tensor:
    """The domain (N,) int64 of each image: the palette colour nearest its border median."""
    dist = torch.cdist(border_colour(images), palette.to(torch.float32))
    return dist.argmin(dim=1)


def digit_ink(images: Tensor) -> Tensor:
    """(N, 3, H, W) coloured digits -> (N, 1, H, W) in [-1, 1], white digit on black."""
    x = to_255(images)
    bg = border_colour(images)[:, :, None, None]
    span = (WHITE - bg).norm(dim=1, keepdim=True).clamp_min(1.0)
    m = ((x - bg).norm(dim=1, keepdim=True) / span).clamp(0.0, 1.0)
    return m * 2.0 - 1.0


def draw_domains(n: int, d: int, seed: int, stream: int) -> Tensor:
    gen = torch.Generator().manual_seed(mixed_seed(seed, stream))
    return torch.randint(d, (n,), generator=gen)


def other_domains(domains: Tensor, d: int, seed: int) -> Tensor:
    """A fixed target domain per image, never its own: (own + 1 + r) mod d, r in [0, d - 2]."""
    gen = torch.Generator().manual_seed(mixed_seed(seed, 99))
    return (domains + 1 + torch.randint(d - 1, (len(domains),), generator=gen)) % d


def read_digits(root: str, split: str, resolution: int, download: bool) -> MNIST:
    check_split("colored_mnist", split)
    return MNIST(root, split, resolution, download)


class ColoredMNIST(InMemoryImages):
    """Digits on `colors` backgrounds; yields (x, domain); test set: digit -> another colour."""

    paired = False  # training batches are (x, domain); the test set has exact targets
    digits = True  # content accuracy: the digit classifier reads digit_view(translations)

    def __init__(
        self,
        colors: dict[str, Any],
        root: str = "data",
        split: str = "train",
        eval_split: str = "test",
        test_size: int = 10_000,
        resolution: int = 28,
        seed: int = 0,
        download: bool = False,
    ) -> None:
        self.domains, self.palette = palette_tensor(dict(colors))
        d = len(self.domains)
        train = read_digits(root, split, resolution, download)
        domains = draw_domains(len(train), d, seed, 0 if split == "train" else 1)
        super().__init__(colorize(train.images, self.palette, domains), domains, d)
        self.digit_labels = train.labels
        self.direction = "AtoB"
        self.source_shape = self.shape
        test = read_digits(root, eval_split, resolution, download)
        n = min(test_size, len(test))
        digits, labels = test.images[:n], test.labels[:n]
        source = draw_domains(n, d, seed, 0 if eval_split == "train" else 1)
        target = other_domains(source, d, seed)
        self._test = TestSet(
            colorize(digits, self.palette, source),
            colorize(digits, self.palette, target),
            [f"{i:05d}.png" for i in range(n)],
            True,
            labels,
            labels,
            source,
            target,
            {"palette": self.palette, "domains": self.domains},
        )

    def test_set(self, n: int | None = None) -> TestSet:
        return self._test.head(n)

    def baselines(self) -> dict[str, Any]:
        return {"copy": lambda a: a}

    def classify_colour(self, images: Tensor) -> Tensor:
        return classify_colour(images, self.palette)

    @staticmethod
    def digit_view(images: Tensor) -> Tensor:
        return digit_ink(images)


class ColoredMNISTPair(PairedTensors):
    """Two colours of coloured MNIST as CycleGAN's unpaired domains (disjoint digits)."""

    digits = True  # content accuracy: the digit classifier reads digit_view(translations)

    def __init__(
        self,
        colors: dict[str, Any],
        a: str,
        b: str,
        root: str = "data",
        split: str = "train",
        eval_split: str = "test",
        test_size: int = 10_000,
        resolution: int = 28,
        direction: str = "AtoB",
        download: bool = False,
    ) -> None:
        self.domains, self.palette = palette_tensor(dict(colors))
        for key, name in (("a", a), ("b", b)):
            if name not in self.domains:
                raise GanrunError(
                    f"dataset.{key}={name} is not one of dataset.colors: {', '.join(self.domains)}."
                )
        if a == b:
            raise GanrunError(f"dataset.a and dataset.b are both {a}; pick two colours.")
        ia, ib = self.domains.index(a), self.domains.index(b)
        train = read_digits(root, split, resolution, download)
        test = read_digits(root, eval_split, resolution, download)
        test_n = min(test_size, len(test) // 2)
        halves = {}
        for name, data, n in (("train", train, len(train)), ("test", test, 2 * test_n)):
            even, odd = data.images[:n:2], data.images[1:n:2]
            halves[name] = (
                colorize(even, self.palette, torch.full((len(even),), ia)),
                colorize(odd, self.palette, torch.full((len(odd),), ib)),
                data.labels[:n:2],
                data.labels[1:n:2],
            )
        tr, te = halves["train"], halves["test"]
        super().__init__(
            tr[0],
            tr[1],
            paired=False,
            direction=direction,
            test_a=te[0],
            test_b=te[1],
            baselines={"copy": lambda x: x},
            test_labels=(te[2], te[3]),
        )
        target = ia if check_direction(direction) else ib
        self._test.b_domains = torch.full((len(self._test.a),), target)
        self._test.extra = {"palette": self.palette, "domains": self.domains}

    def classify_colour(self, images: Tensor) -> Tensor:
        return classify_colour(images, self.palette)

    @staticmethod
    def digit_view(images: Tensor) -> Tensor:
        return digit_ink(images)

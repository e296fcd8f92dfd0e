"""Paired tasks derived offline from any image dataset: colorization, super-resolution,
inpainting, edges.

Each task wraps an image dataset (`dataset.source`, a full dataset config; the YAML pulls it
in with `defaults: - /dataset@source: cifar10`, so `dataset@dataset.source=mnist` swaps it and
brings that dataset's feature extractor along). Its images are b, the target; a = degrade(b)
is a fixed function of the pixels (uint8 in, uint8 out), so the pairs are the same on every
machine and every run, from the files on disk alone (no random masks, no JPEG noise).

The training pairs come from the source's own split (`dataset.source.split`, train by
default); the test set from `eval_split` (test) of the same source when it has splits, else
(an image folder) from the first `test_size` training images: a plain folder has no held-out
split, and saying so beats inventing one.

Each task also names its baselines, the trivial predictions of b from a that a translator
has to beat on the same test images (evaluation/translation.py prints them side by side).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganrun.data.digits import Digits
from ganrun.data.mnist import MNIST, FashionMNIST
from ganrun.data.translation import Baseline, PairedTensors, check_direction
from ganrun.errors import GanrunError

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, what PIL's convert("L") uses
CHUNK = 4096  # images degraded at a time (bounds the float working memory)
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def to_grey(images: Tensor) -> Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 1, H, W) luma; one channel passes through."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def grey_to_rgb(a: Tensor) -> Tensor:
    """Colorization's baseline: the grey input copied into every colour channel."""
    return a.expand(-1, 3, -1, -1).clone() if a.shape[1] == 1 else a


def down_up(images: Tensor, factor: int) -> Tensor:
    """uint8 images shrunk `factor` times (antialiased bicubic) and enlarged back (bicubic):
    the classic super-resolution input, at the target's size."""
    h, w = images.shape[-2:]
    if h % factor or w % factor:
        raise GanrunError(
            f"dataset.factor={factor} does not divide the {h}x{w} images; pick a factor that "
            f"divides the resolution (e.g. 4 at 32 px) or change dataset.source.resolution."
        )
    x = images.float()
    small = F.interpolate(x, size=(h // factor, w // factor), mode="bicubic", antialias=True)
    up = F.interpolate(small.round().clamp(0, 255), size=(h, w), mode="bicubic")
    return up.round().clamp(0, 255).to(torch.uint8)


def centre_box(size: int, fraction: float) -> tuple[int, int]:
    """(start, stop) of the centred span covering `fraction` of `size` pixels."""
    span = max(1, round(size * fraction))
    start = (size - span) // 2
    return start, start + span


def mask_centre(images: Tensor, fraction: float, fill: int = 128) -> Tensor:
    """uint8 images with the centred fraction x fraction box set to `fill` (mid-grey: 0 in
    [-1, 1], so the hole carries no colour)."""
    out = images.clone()
    r0, r1 = centre_box(images.shape[-2], fraction)
    c0, c1 = centre_box(images.shape[-1], fraction)
    out[..., r0:r1, c0:c1] = fill
    return out


def sobel_edges(images: Tensor) -> Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, 1, H, W): the Sobel gradient magnitude of the luma
    (replicate padding), scaled so the largest possible magnitude (4 * 255 * sqrt(2)) is 255,
    then rescaled per image to span 0..255 (faint edges stay visible; flat images stay 0)."""
    grey = to_grey(images).float()
    kx = torch.tensor(SOBEL_X).view(1, 1, 3, 3)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx)
    gy = F.conv2d(padded, kx.transpose(-1, -2))
    mag = torch.sqrt(gx * gx + gy * gy)
    peak = mag.amax(dim=(1, 2, 3), keepdim=True)
    scaled = torch.where(peak > 0, mag * (255.0 / peak.clamp_min(1e-12)), mag)
    return scaled.round().clamp(0, 255).to(torch.uint8)


def in_chunks(fn: Any, images: Tensor) -> Tensor:
    return torch.cat([fn(chunk) for chunk in images.split(CHUNK)]) if len(images) else images


class DerivedPairs(PairedTensors):
    """(a = degrade(b), b) pairs from an image dataset; subclasses give degrade and baselines."""

    task = "derived"

    def __init__(
        self,
        source: Any,
        eval_split: str = "test",
        test_size: int = 10_000,
        direction: str = "AtoB",
    ) -> None:
        from ganrun.build import make  # build imports the data package: import it late

        node = source if isinstance(source, DictConfig) else OmegaConf.create(source)
        if "_target_" not in node:
            raise GanrunError(
                f"dataset.source must be a dataset config with a _target_ (got {dict(node)}); "
                f"pick one with dataset@dataset.source=<name> (e.g. cifar10, mnist, digits)."
            )
        if test_size < 1:
            raise GanrunError(f"dataset.test_size={test_size} must be at least 1.")
        train = make(node, "dataset.source")
        if len(getattr(train, "shape", ())) != 3:
            raise GanrunError(
                f"dataset.source={node._target_} gives no images (shape {train.shape}); "
                f"dataset={self.task} needs an image dataset as its source."
            )
        self.source_node = node
        # content accuracy (digit classifier) only where the images are handwritten digits
        self.digits = isinstance(train, (MNIST, Digits)) and not isinstance(train, FashionMNIST)
        b_train = train.real_images(len(train))
        labels_train = getattr(train, "labels", None)
        if "split" in node and node.split != eval_split:
            test_node = OmegaConf.merge(node, {"split": eval_split})
            test = make(test_node, "dataset.source")
            b_test, labels = test.real_images(len(test))[:test_size], getattr(test, "labels", None)
        else:  # no held-out split: the first test_size training images (see the module doc)
            b_test, labels = b_train[:test_size], labels_train
        test_labels = None if labels is None else labels[: len(b_test)]
        self.labels = labels_train
        self.check_source(tuple(b_train.shape[1:]))
        super().__init__(
            in_chunks(self.degrade, b_train),
            b_train,
            paired=True,
            direction=direction,
            test_a=in_chunks(self.degrade, b_test),
            test_b=b_test,
            baselines=self.task_baselines() if not check_direction(direction) else {},
            test_labels=(test_labels, test_labels),
        )
        if check_direction(direction) and self.shape == self.source_shape:
            self._baselines = {"copy": lambda a: a}

    def check_source(self, shape: tuple[int, ...]) -> None:
        """Refuse sources this task cannot use (e.g. grey images for colorization)."""

    def degrade(self, b: Tensor) -> Tensor:
        raise NotImplementedError

    def task_baselines(self) -> dict[str, Baseline]:
        return {"copy": lambda a: a}


class Colorization(DerivedPairs):
    """Grey (BT.601 luma, 1 channel) -> colour; baseline: the grey copied to RGB."""

    task = "colorization"

    def check_source(self, shape: tuple[int, ...]) -> None:
        if shape[0] != 3:
            raise GanrunError(
                f"dataset=colorization needs colour images, but dataset.source gives {shape[0]} "
                f"channel(s); use a colour source (dataset@dataset.source=cifar10, or an "
                f"image_folder with dataset.source.channels=3)."
            )

    def degrade(self, b: Tensor) -> Tensor:
        return to_grey(b)

    def task_baselines(self) -> dict[str, Baseline]:
        return {"grey": grey_to_rgb}


class SuperResolution(DerivedPairs):
    """x`factor` down (antialiased bicubic) then up (bicubic) -> the full image; the input is
    already bicubic-upsampled, so its copy is the `bicubic` baseline."""

    task = "superres"

    def __init__(self, source: Any, factor: int = 4, **kwargs: Any) -> None:
        if factor < 2:
            raise GanrunError(f"dataset.factor={factor} must be at least 2 (x2, x4, ...).")
        self.factor = factor
        super().__init__(source, **kwargs)

    def degrade(self, b: Tensor) -> Tensor:
        return down_up(b, self.factor)

    def task_baselines(self) -> dict[str, Baseline]:
        return {"bicubic": lambda a: a}


class Inpainting(DerivedPairs):
    """The centred `hole` x `hole` fraction of each image set to mid-grey -> the full image;
    baseline: the masked image itself."""

    task = "inpainting"

    def __init__(self, source: Any, hole: float = 0.5, **kwargs: Any) -> None:
        if not 0.0 < hole < 1.0:
            raise GanrunError(
                f"dataset.hole={hole} must be a fraction of the side in (0, 1), e.g. 0.5."
            )
        self.hole = hole
        super().__init__(source, **kwargs)

    def degrade(self, b: Tensor) -> Tensor:
        return mask_centre(b, self.hole)

    def task_baselines(self) -> dict[str, Baseline]:
        return {"masked": lambda a: a}


class Edges(DerivedPairs):
    """Sobel edges of the luma (1 channel) -> the image; baseline: the edge map copied into
    the image's channels (edges2shoes' trivial answer)."""

    task = "edges"

    def degrade(self, b: Tensor) -> Tensor:
        return sobel_edges(b)

    def task_baselines(self) -> dict[str, Baseline]:
        if self.channels == 3:
            return {"copy": grey_to_rgb}
        return {"copy": lambda a: a}

    def check_source(self, shape: tuple[int, ...]) -> None:
        self.channels = shape[0]

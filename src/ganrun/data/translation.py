"""The contract of image-to-image translation data, and an in-memory implementation.

A translation dataset is a dataset (see data/base.py: `shape`, `num_classes`, `batches()`
whose k-th batch is a pure function of (seed, k), so resume is exact) with two domains:

- `batches(batch_size, seed, start, device)` yields `(a, b)`: a = source-domain batch,
  b = target-domain batch, float in [-1, 1], (B, C, H, W), after `direction` is applied
  (BtoA swaps the two domains everywhere: batches, test set, shapes, baselines).
- `shape` is b's sample shape (what G emits, what D and FID see), `source_shape` a's.
- `paired`: True when b is a's ground truth (pix2pix; the same random crop and flip are
  applied to both); False when a and b are drawn independently (CycleGAN).
- `num_classes` is None, except for domain-labelled data (StarGAN's colored_mnist): that
  yields `(x, domain)` like a labelled dataset, `num_classes` = number of domains, `domains`
  names them, and its test set carries the digit labels (content accuracy).
- `test_set(n=None)`: a fixed evaluation split (`TestSet`: uint8 a, b, names), the same on
  every call, made from the files on disk only; `ganrun eval`, in-training evaluation,
  `ganrun translate` and the baselines all read it.
- `baselines()`: name -> function(a float [-1, 1]) -> a prediction of b: the trivial answer
  a translation must beat (input copy; bicubic upsampling for superres; grey copied to RGB for
  colorization; the masked image for inpainting). Every paired metric is printed beside them.
- `real_images(n, seed)`: target-domain test images (uint8), the FID/KID reference, so the
  image metrics of evaluation/ (ImageEvaluator, DatasetImages) work unchanged on translations.

The method side (`Translating`): a translation method exposes `translator(state)` -> a
`Translate` function (source batch in [-1, 1], optional target domains) -> b prediction in
[-1, 1], in eval mode and without gradients. evaluation/translation.py only calls that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ganrun.data.base import batch_indices, from_uint8, mixed_seed, subset_indices, to_device
from ganrun.errors import GanrunError

if TYPE_CHECKING:
    from ganrun.training.state import TrainState

DIRECTIONS = ("AtoB", "BtoA")
Baseline = Callable[[Tensor], Tensor]  # source batch [-1, 1] -> prediction of b, [-1, 1]
PairBatch = tuple[Tensor, Tensor]


def check_direction(direction: str) -> bool:
    """True when the domains are swapped (BtoA); a clear error for anything else."""
    if direction not in DIRECTIONS:
        raise GanrunError(
            f"dataset.direction={direction!r} is not a direction; use AtoB (A is the source, "
            f"B the target) or BtoA (the other way)."
        )
    return direction == "BtoA"


@dataclass
class TestSet:
    """The fixed evaluation split: uint8 images and the names they are written under.

    Paired: `b[i]` is the ground truth of `a[i]` (len(a) == len(b)). Unpaired: `b` is the
    target domain's own test images (any count), used for FID/KID only. Labels are the digit
    classes when the data have them (content accuracy); domains are colored_mnist's colours.
    """

    __test__ = False  # a data class, not a pytest test class

    a: Tensor  # uint8 (N, C, H, W): the source images
    b: Tensor  # uint8 (M, C', H', W'): targets (paired: M == N, aligned with a)
    names: list[str]  # N names (file names, or "<index>.png"), for translate's outputs
    paired: bool = True
    a_labels: Tensor | None = None  # (N,) int64 class of each source image (digits)
    b_labels: Tensor | None = None  # (M,) int64
    a_domains: Tensor | None = None  # (N,) int64 domain of each source image (colored_mnist)
    b_domains: Tensor | None = None  # (N,) int64 target domain asked of each a (StarGAN, colours)
    extra: dict[str, Any] = field(default_factory=dict)  # dataset-specific facts (palette, ...)

    def __post_init__(self) -> None:
        for key in ("a", "b"):
            t = getattr(self, key)
            if t.dtype != torch.uint8 or t.dim() != 4:
                raise ValueError(
                    f"TestSet.{key} must be uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}"
                )
        if len(self.names) != len(self.a):
            raise ValueError(f"{len(self.names)} names for {len(self.a)} source images")
        if self.paired and len(self.a) != len(self.b):
            raise ValueError(f"paired test set with {len(self.a)} sources, {len(self.b)} targets")

    def __len__(self) -> int:
        return len(self.a)

    def head(self, n: int | None) -> TestSet:
        """The first n items (all when n is None or >= len): a fixed subset, same each call."""
        if n is None or n >= len(self):
            return self
        return TestSet(
            self.a[:n],
            self.b[:n] if self.paired else self.b,
            self.names[:n],
            self.paired,
            None if self.a_labels is None else self.a_labels[:n],
            self.b_labels if not self.paired or self.b_labels is None else self.b_labels[:n],
            None if self.a_domains is None else self.a_domains[:n],
            None if self.b_domains is None else self.b_domains[:n],
            self.extra,
        )

    def swapped(self) -> TestSet:
        """The same split seen BtoA (paired sets only: unpaired sets swap at the source)."""
        if not self.paired:
            raise ValueError("swap an unpaired test set by building it with the domains swapped")
        names = self.names
        return TestSet(self.b, self.a, names, True, self.b_labels, self.a_labels, extra=self.extra)


@runtime_checkable
class TranslationData(Protocol):
    """What methods, evaluation and `ganrun translate` need from a translation dataset."""

    shape: tuple[int, ...]  # b's sample shape (C, H, W)
    source_shape: tuple[int, ...]  # a's sample shape (C, H, W)
    paired: bool  # b is a's ground truth
    num_classes: int | None  # None; the number of domains for domain-labelled data
    direction: str  # AtoB | BtoA, already applied to everything below

    def batches(
        self, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
    ) -> Iterator[PairBatch]: ...

    def test_set(self, n: int | None = None) -> TestSet: ...

    def baselines(self) -> dict[str, Baseline]: ...

    def preview(self, n: int) -> Tensor: ...

    def real_images(self, n: int, seed: int = 0) -> Tensor: ...

    def __len__(self) -> int: ...


class Translate(Protocol):
    """A trained translator: source batch in [-1, 1] (B, C, H, W) -> b prediction in [-1, 1].

    `domain` (B,) int64 is the target domain of each image for domain-conditioned methods
    (StarGAN); the others ignore it. Called under torch.no_grad(), networks in eval mode.
    """

    def __call__(self, a: Tensor, domain: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class Translating(Protocol):
    """A method that translates (pix2pix, CycleGAN, StarGAN): its A->B function for a state
    (the EMA generator when the run keeps one). Evaluation calls nothing else."""

    def translator(self, state: TrainState) -> Translate: ...


def copy_baseline(a: Tensor) -> Tensor:
    """The input itself: the baseline of same-shape tasks (grey channels copied to 3 when the
    target has 3 channels is colorization's own baseline; see data/tasks.py)."""
    return a


def pair_batches(
    a: Tensor,
    b: Tensor,
    batch_size: int,
    seed: int,
    start: int,
    device: str | torch.device,
    paired: bool,
    transform: Callable[[Tensor, Tensor, int], PairBatch] | None = None,
) -> Iterator[PairBatch]:
    """(a, b) float batches from uint8 stacks: one index stream for both (paired), or two
    independent streams (unpaired: b's is seeded from mixed_seed(seed, 1)). `transform(a, b,
    k)` (the shared random crop and flip) sees uint8 batches and the batch number k."""
    a_dev, b_dev = to_device(a, device), to_device(b, device)
    a_idx = batch_indices(len(a), batch_size, seed, start, a_dev.device)
    b_idx = (
        a_idx
        if paired
        else batch_indices(len(b), batch_size, mixed_seed(seed, 1), start, b_dev.device)
    )
    for k, ia in enumerate(a_idx, start):
        ib = ia if paired else next(b_idx)
        xa, xb = a_dev[ia], b_dev[ib]
        if transform is not None:
            xa, xb = transform(xa, xb, k)
        yield from_uint8(xa), from_uint8(xb)


class PairedTensors:
    """Two domains held as uint8 tensors: the in-memory translation dataset.

    Used directly by tests (tiny hand-made pairs) and built by the folder and task datasets
    from the images they decode. `test_a`/`test_b` default to the training tensors (tests).
    `transform(a, b, k)` is applied to training batches only (the shared crop and flip), so
    the test tensors must already be at the cropped size (the folder datasets centre-crop).
    """

    num_classes: int | None = None

    def __init__(
        self,
        a: Tensor,
        b: Tensor,
        names: list[str] | None = None,
        paired: bool = True,
        direction: str = "AtoB",
        test_a: Tensor | None = None,
        test_b: Tensor | None = None,
        test_names: list[str] | None = None,
        baselines: dict[str, Baseline] | None = None,
        transform: Callable[[Tensor, Tensor, int], PairBatch] | None = None,
        test_labels: tuple[Tensor | None, Tensor | None] = (None, None),
    ) -> None:
        for key, t in (("a", a), ("b", b)):
            if t.dtype != torch.uint8 or t.dim() != 4:
                raise ValueError(
                    f"{key} must be uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}"
                )
        if paired and len(a) != len(b):
            raise ValueError(f"paired data with {len(a)} sources and {len(b)} targets")
        test_a = a if test_a is None else test_a
        test_b = b if test_b is None else test_b
        test_names = test_names or [f"{i:05d}.png" for i in range(len(test_a))]
        self.direction = direction
        self.paired = paired
        if check_direction(direction):
            a, b, test_a, test_b = b, a, test_b, test_a
            test_labels = (test_labels[1], test_labels[0])
            if not paired:  # the names follow the source images
                test_names = [f"{i:05d}.png" for i in range(len(test_a))]
        self.a, self.b, self.names = a, b, names
        self._test = TestSet(test_a, test_b, test_names, paired, *test_labels)
        self._baselines = dict(baselines or {})
        self.transform = transform
        self.source_shape: tuple[int, ...] = tuple(a.shape[1:])
        self.shape: tuple[int, ...] = (
            tuple(b.shape[1:]) if transform is None else self._crop_shape()
        )
        if paired and tuple(test_b.shape[1:]) != self.shape:
            raise ValueError(
                f"test targets are {tuple(test_b.shape[1:])} but training batches {self.shape}: "
                f"give the test set at the cropped size (a centre crop)"
            )

    def _crop_shape(self) -> tuple[int, ...]:
        xa, xb = self.transform(self.a[:1], self.b[:1], 0)
        self.source_shape = tuple(xa.shape[1:])
        return tuple(xb.shape[1:])

    def __len__(self) -> int:
        return len(self.a)

    def batches(
        self, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
    ) -> Iterator[PairBatch]:
        return pair_batches(
            self.a, self.b, batch_size, seed, start, device, self.paired, self.transform
        )

    def test_set(self, n: int | None = None) -> TestSet:
        return self._test.head(n)

    def baselines(self) -> dict[str, Baseline]:
        return dict(self._baselines)

    def preview(self, n: int) -> Tensor:
        """The first n target test images in [-1, 1] (reals.png shows what G should make)."""
        return from_uint8(self._test.b[:n])

    def real_images(self, n: int, seed: int = 0) -> Tensor:
        """n target-domain test images (uint8), the FID/KID reference."""
        return self._test.b[subset_indices(len(self._test.b), n, seed)]

"""Stacked MNIST (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): 1000 modes.

Each image stacks three MNIST digits, drawn independently and uniformly from the split, as
its three channels; its mode is the digit triple, labelled 100 * d0 + 10 * d1 + d2 (1000
classes). The `size` images are drawn once from a generator seeded with `seed`, so every run
with the same keys sees the same dataset.

Only the source digits (60,000 x 1 x 28 x 28 uint8, 47 MB) and the (size, 3) index of the
digits in each stack are kept; batches gather their channels from them on the training
device. That is 8x less memory than materialising 128,000 x 3 x 28 x 28 (301 MB), with the
same batches (`images` still materialises the whole stack when something asks for it).

`evaluate(samples)` counts the modes a generator covers: each channel of each sample is
classified by the digit classifier (scripts/train_digit_classifier.py), and the triples give
`modes` (distinct triples among the samples, out of 1000) and `reverse_kl`
(KL(q || uniform over 1000) of the triple histogram q, natural log).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ganrun.data.base import (
    Batch,
    batch_indices,
    from_uint8,
    mixed_seed,
    subset_indices,
    to_device,
)
from ganrun.data.files import check_split, missing_files_error
from ganrun.data.mnist import MNIST
from ganrun.errors import GanrunError
from ganrun.evaluation.features.digit_classifier import DigitClassifier, load_digit_classifier
from ganrun.evaluation.metrics.modes import reverse_kl_uniform

N_MODES = 1000


def triples_to_modes(digits: Tensor) -> Tensor:
    """Digit triples (n, 3) -> mode indices 100 * d0 + 10 * d1 + d2 (n,)."""
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def mode_coverage(modes: Tensor, n_modes: int = N_MODES) -> dict[str, float]:
    """{"modes": distinct modes hit, "reverse_kl": KL(q || uniform)} of mode indices (n,)."""
    counts = torch.bincount(modes.long().flatten().cpu(), minlength=n_modes)
    if len(counts) > n_modes:
        raise ValueError(f"mode indices must be in [0, {n_modes}), got {modes.max().item()}")
    return {"modes": float((counts > 0).sum()), "reverse_kl": reverse_kl_uniform(counts)}


class StackedMNIST:
    """`size` 3-channel images, each channel an independently drawn MNIST digit of `split`."""

    num_classes: int | None = N_MODES

    def __init__(
        self,
        root: str = "data",
        split: str = "train",
        resolution: int = 28,
        size: int = 128_000,
        seed: int = 0,
        download: bool = False,
        classifier: str | None = None,
    ) -> None:
        if size < 1:
            raise GanrunError(f"dataset.size={size} must be positive.")
        prefix = "train" if check_split("stacked_mnist", split) else "t10k"
        try:
            mnist = MNIST(root, split, resolution, download)
        except GanrunError:  # the MNIST files are missing: say so under this dataset's name
            raw = Path(root) / MNIST.folder / "raw"
            expected = [
                raw / f"{prefix}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1")
            ]
            raise missing_files_error("stacked_mnist", root, expected) from None
        self.source = mnist.images  # (N, 1, R, R) uint8
        self.source_labels = mnist.labels
        gen = torch.Generator().manual_seed(mixed_seed(seed, 0))
        self.index = torch.randint(len(self.source), (size, 3), generator=gen)  # (size, 3)
        self.digits = self.source_labels[self.index]  # (size, 3)
        self.labels = triples_to_modes(self.digits)
        self.shape: tuple[int, ...] = (3, resolution, resolution)
        self.classifier_path = classifier
        self._classifier: DigitClassifier | None = None

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def _stack(source: Tensor, index: Tensor) -> Tensor:
        """uint8 (n, 3, R, R) from source digits (N, 1, R, R) and an index (n, 3)."""
        return source[index].squeeze(2)

    @property
    def images(self) -> Tensor:
        """The whole dataset as one uint8 (size, 3, R, R) tensor (materialised on each call)."""
        return self._stack(self.source, self.index)

    def batches(
        self, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
    ) -> Iterator[Batch]:
        # moved once; every batch is gathered on the device (see InMemoryImages)
        source, index, labels = (
            to_device(t, device) for t in (self.source, self.index, self.labels)
        )
        for idx in batch_indices(len(self), batch_size, seed, start, source.device):
            x = from_uint8(self._stack(source, index[idx]))
            yield x, labels[idx]

    def preview(self, n: int) -> Tensor:
        """The first n images in [-1, 1], for reals.png."""
        return from_uint8(self._stack(self.source, self.index[:n]))

    def real_images(self, n: int, seed: int = 0) -> Tensor:
        """n stacked images (all when n >= len) as uint8 (n, 3, R, R), for reference statistics."""
        return self._stack(self.source, self.index[subset_indices(len(self), n, seed)])

    # ----------------------------------------------------------------- evaluation

    def classifier(self) -> DigitClassifier:
        """The digit classifier, loaded on first use (a GanrunError naming the script if absent)."""
        if self._classifier is None:
            path = None if self.classifier_path is None else Path(self.classifier_path)
            self._classifier = load_digit_classifier(path)
        return self._classifier

    def classify(self, samples: Tensor) -> Tensor:
        """The digit of each channel of samples (n, 3, H, W) in [-1, 1], as (n, 3) int64."""
        if samples.dim() != 4 or samples.shape[1] != 3:
            raise ValueError(
                f"stacked MNIST samples must be (n, 3, H, W), got {tuple(samples.shape)}"
            )
        model = self.classifier().to(samples.device)
        n, _, h, w = samples.shape
        return model.predict(samples.detach().reshape(n * 3, 1, h, w)).view(n, 3).cpu()

    def evaluate(self, samples: Tensor) -> dict[str, float]:
        """{"modes", "reverse_kl"} of generated samples (n, 3, H, W) in [-1, 1]."""
        if len(samples) == 0:
            raise ValueError("evaluate needs at least one sample")
        return mode_coverage(triples_to_modes(self.classify(samples)))

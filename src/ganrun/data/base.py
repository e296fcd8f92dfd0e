"""The data contract the training loop relies on, and in-memory image batching.

Every dataset exposes `shape` (one sample: (C, H, W) or (2,)), `num_classes` (None when
unlabelled) and `batches(batch_size, seed, start, device)`: an endless iterator whose k-th
batch is a pure function of (seed, k). That is what makes resume exact without saving a
loader's state: a run resumed at step s simply starts at batch s * n_critic.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ganrun.errors import GanrunError

Batch = tuple[Tensor, Tensor | None]


def mixed_seed(seed: int, index: int) -> int:
    """A distinct 63-bit generator seed per (run seed, index)."""
    return (seed * 1_000_003 + index * 7_919 + 1) & ((1 << 63) - 1)


def check_batch_size(n: int, batch_size: int, world: int = 1) -> None:
    """The global batch (batch_size per process x `world` processes) must fit in the data."""
    if batch_size * world > n:
        total = f" x {world} processes = {batch_size * world}" if world > 1 else ""
        raise GanrunError(
            f"trainer.batch_size={batch_size}{total} is larger than the dataset ({n} samples). "
            f"Lower trainer.batch_size to at most {n // world}."
        )


def from_uint8(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the inverse of artifacts.to_uint8): what G's tanh emits."""
    return images.float().div_(127.5).sub_(1.0)


def to_device(t: Tensor, device: str | torch.device) -> Tensor:
    """t on `device`; to a GPU through pinned memory without blocking, so the copy neither
    stalls the host nor synchronises the stream (a pageable-memory copy would)."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def batch_indices(
    n: int, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
) -> Iterator[Tensor]:
    """Index batches over epochs of fresh permutations (the ragged tail of each is dropped).

    The permutations are drawn on the CPU (the same batches on every device) and moved to
    `device` once per epoch; each batch is a slice of that device tensor.
    """
    check_batch_size(n, batch_size)
    per_epoch = n // batch_size
    epoch, offset = divmod(start, per_epoch)
    while True:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(mixed_seed(seed, epoch)))
        perm = to_device(perm, device)
        for j in range(offset, per_epoch):
            yield perm[j * batch_size : (j + 1) * batch_size]
        epoch, offset = epoch + 1, 0


def subset_indices(total: int, n: int, seed: int = 0) -> Tensor:
    """Indices of n real samples for reference statistics: all of them, in order, when
    n >= total; else a seeded random subset (sorted, so reads stay sequential)."""
    if n >= total:
        return torch.arange(total)
    gen = torch.Generator().manual_seed(mixed_seed(seed, 0))
    return torch.randperm(total, generator=gen)[:n].sort().values


def resize_uint8(images: Tensor, resolution: int) -> Tensor:
    """Resize a uint8 (N, C, H, W) stack to resolution x resolution (antialiased bilinear)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = F.interpolate(
        images.float(),
        size=(resolution, resolution),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
    return out.round().clamp(0, 255).to(torch.uint8)


class InMemoryImages:
    """Images kept as one uint8 tensor, copied to the training device once (and kept there).

    Batches are gathered by index on that device and scaled to [-1, 1] there: no DataLoader
    and no per-step host copies for the datasets that fit in memory (digits, MNIST, CIFAR-10,
    Stacked MNIST: at most 150 MB as uint8).
    """

    def __init__(self, images: Tensor, labels: Tensor | None, num_classes: int | None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"expected uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}"
            )
        self.images = images
        self.labels = labels
        self.num_classes = num_classes
        self.shape: tuple[int, ...] = tuple(images.shape[1:])
        self._resident: dict[torch.device, tuple[Tensor, Tensor | None]] = {}

    def on_device(self, device: str | torch.device) -> tuple[Tensor, Tensor | None]:
        """(images, labels) on `device`, copied there on the first call only."""
        device = torch.device(device)
        if device not in self._resident:
            labels = None if self.labels is None else to_device(self.labels, device)
            self._resident[device] = (to_device(self.images, device), labels)
        return self._resident[device]

    def __len__(self) -> int:
        return self.images.shape[0]

    def batches(
        self, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
    ) -> Iterator[Batch]:
        images, labels = self.on_device(device)
        for idx in batch_indices(len(self), batch_size, seed, start, images.device):
            x = from_uint8(images[idx])
            yield x, (None if labels is None else labels[idx])

    def preview(self, n: int) -> Tensor:
        """The first n images in [-1, 1], for reals.png."""
        return from_uint8(self.images[:n])

    def real_images(self, n: int, seed: int = 0) -> Tensor:
        """n images (all when n >= len) as uint8 (n, C, H, W), for reference statistics."""
        return self.images[subset_indices(len(self), n, seed)]

"""Drawing from a generator: label binding for conditional models, chunked generation."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ganrun.errors import GanrunError


def conditioned(model: nn.Module, labels: Tensor | None) -> Callable[[Tensor], Tensor]:
    """model itself, or model with the class labels bound (x -> model(x, y=labels))."""
    return model if labels is None else functools.partial(model, y=labels)


def class_labels(n: int, num_classes: int, classes: list[int] | None = None) -> Tensor:
    """The requested classes (default: every class in turn) cycled to length n."""
    chosen = list(range(num_classes)) if not classes else [int(c) for c in classes]
    bad = [c for c in chosen if not 0 <= c < num_classes]
    if bad:
        raise GanrunError(
            f"labels={list(classes or [])}: {bad} out of range; this model has classes "
            f"0..{num_classes - 1}."
        )
    return torch.tensor(chosen).repeat(n // len(chosen) + 1)[:n]


@torch.no_grad()
def generate(G: nn.Module, z: Tensor, batch_size: int, labels: Tensor | None = None) -> Tensor:
    """G on z in chunks (with class labels for a conditional G), gathered on the CPU as float32."""
    chunks = z.split(batch_size)
    label_chunks = [None] * len(chunks) if labels is None else labels.split(batch_size)
    return torch.cat([conditioned(G, y)(zc).float().cpu() for zc, y in zip(chunks, label_chunks)])

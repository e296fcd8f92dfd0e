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


def truncation_options(
    G: nn.Module, truncation: float | None = None, truncation_cutoff: int | None = None
) -> dict[str, float | int]:
    """The truncation keywords for G's forward, only those set (so generators without the
    trick are called as before); a clear error when G cannot truncate or the values are off."""
    if truncation is None:
        if truncation_cutoff is not None:
            raise GanrunError(
                f"truncation_cutoff={truncation_cutoff} without truncation: set truncation=psi "
                f"too (e.g. truncation=0.7), or drop truncation_cutoff."
            )
        return {}
    if not getattr(G, "supports_truncation", False):
        raise GanrunError(
            f"truncation={truncation}: this generator ({type(G).__name__}) has no truncation "
            f"trick; drop truncation= (it applies to model=stylegan2 and BigGAN-type models)."
        )
    if truncation_cutoff is not None and truncation_cutoff < 0:
        raise GanrunError(
            f"truncation_cutoff={truncation_cutoff} must be >= 0 (the number of layers "
            f"truncated, from the coarsest; null: all)."
        )
    options: dict[str, float | int] = {"truncation": float(truncation)}
    if truncation_cutoff is not None:
        options["truncation_cutoff"] = int(truncation_cutoff)
    return options


@torch.no_grad()
def generate(
    G: nn.Module,
    z: Tensor,
    batch_size: int,
    labels: Tensor | None = None,
    truncation: float | None = None,
    truncation_cutoff: int | None = None,
) -> Tensor:
    """G on z in chunks (with class labels for a conditional G), gathered on the CPU as float32.

    truncation (psi) and truncation_cutoff reach G only when set (see truncation_options)."""
    options = truncation_options(G, truncation, truncation_cutoff)
    chunks = z.split(batch_size)
    label_chunks = [None] * len(chunks) if labels is None else labels.split(batch_size)
    return torch.cat(
        [conditioned(G, y)(zc, **options).float().cpu() for zc, y in zip(chunks, label_chunks)]
    )

"""Latent walks: the frames of `ganrun video kind=interpolate`.

A walk visits keyframes on a loop and eases between them. Keyframe k of a seed walk is the
batch `ganrun sample` draws for seed `seed + k` (the same latents, labels and truncation),
so a still from the video can be reproduced, and refined, with `ganrun sample`. Between
keyframes z moves on the sphere (slerp): a Gaussian z lives near the sphere of radius
sqrt(z_dim), and a straight line between two such points dips through the low-density middle
of the ball, where a generator draws washed-out images.

A class walk holds z (seed `seed`) and moves every cell through the classes of `labels`,
mixing the generator's class embeddings (every nn.Embedding it has: the label embedding of
conditioning=projection, the per-class BatchNorm scales of cbn_projection, a native model's
own embedding) in proportion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganrun.errors import GanrunError
from ganrun.sampling.generate import generate
from ganrun.sampling.generator import Generator


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between rows of a and b (t=0: a, t=1: b), radii interpolated
    linearly; falls back to a straight line where two rows point the same way. The ends are
    a and b exactly (not a / |a| * |a|), so the keyframes are `ganrun sample`'s images."""
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, torch.full_like(sin, 1 - t), torch.sin((1 - t) * omega) / safe)
    wb = torch.where(parallel, torch.full_like(sin, t), torch.sin(t * omega) / safe)
    direction = wa * ua + wb * ub
    radius = (1 - t) * na + t * nb
    unit = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(parallel, (1 - t) * a + t * b, unit * radius)


def ease(t: float) -> float:
    """Smoothstep: the walk slows into each keyframe, so it can be seen, and never jerks."""
    return t * t * (3 - 2 * t)


@dataclass(frozen=True)
class Walk:
    """Where a latent walk goes: `keyframes` stops on a loop, `frames` frames from one to the
    next (the keyframe itself first), so the video holds keyframes * frames frames."""

    n: int  # cells in the grid (2-D data: points in the scatter)
    keyframes: int = 4  # stops on the loop (seeds seed, seed+1, ..., or the classes in labels)
    frames: int = 24  # frames per segment, keyframe included
    seed: int = 0
    labels: tuple[int, ...] | None = None  # classes (seed walk: cycled over the cells)
    classes: bool = False  # walk through the classes in labels, z fixed
    truncation: float | None = None  # passed to the generator, as `ganrun sample` does
    truncation_cutoff: int | None = None  # likewise

    def check(self) -> None:
        for key, value, least in (("n", self.n, 1), ("keyframes", self.keyframes, 2)):
            if value < least:
                raise GanrunError(f"{key}={value}: a latent walk needs {key} >= {least}.")
        if self.frames < 1:
            raise GanrunError(f"frames={self.frames}: frames per segment must be at least 1.")


@contextlib.contextmanager
def mixed_classes(net: nn.Module, target: Tensor, weight: float) -> Iterator[None]:
    """Inside the block every nn.Embedding of `net` returns (1 - weight) * embed(y) +
    weight * embed(target): the class conditioning moves smoothly from y to `target`."""
    embeddings = [m for m in net.modules() if isinstance(m, nn.Embedding)]
    if not embeddings:
        raise GanrunError(
            f"walk_classes=true mixes the generator's class embeddings, but "
            f"{type(net).__name__} has no nn.Embedding. Walk seeds instead (walk_classes=false)."
        )

    def hook(module: nn.Embedding, args: tuple, out: Tensor) -> Tensor:
        other = module(target.to(args[0].device)) if weight else out
        return torch.lerp(out, other, weight)

    handles = []
    try:
        for m in embeddings:
            handles.append(m.register_forward_hook(_once(hook)))
        yield
    finally:
        for h in handles:
            h.remove()


def _once(hook: Callable) -> Callable:
    """A forward hook that does not re-enter itself when it calls its module."""
    busy = [False]

    def wrapped(module: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
        if busy[0]:
            return None
        busy[0] = True
        try:
            return hook(module, args, out)
        finally:
            busy[0] = False

    return wrapped


def _labels(G: Generator, walk: Walk) -> list[int] | None:
    labels = list(walk.labels) if walk.labels else None
    if walk.classes:
        if G.num_classes is None:
            G.labels_for(1, [0])  # raises: unconditional generator
        labels = labels or list(range(G.num_classes))
        if len(labels) < 2:
            raise GanrunError(
                f"walk_classes=true with labels={labels}: a walk across classes needs at least "
                f"two classes, e.g. labels=[3,7] (or labels=null for every class in turn)."
            )
    return labels


def walk_frames(G: Generator, walk: Walk, batch_size: int = 256) -> Iterator[Tensor]:
    """The frames of `walk` in order: each the n samples of G (float in [-1, 1], CPU); frame
    k * walk.frames equals G.sample() of keyframe k."""
    walk.check()
    labels = _labels(G, walk)
    device = G.device

    def draw(z: Tensor, y: Tensor | None) -> Tensor:  # as Generator.sample draws
        return generate(G.net, z, batch_size, y, walk.truncation, walk.truncation_cutoff)

    if walk.classes:
        z = G.latents(walk.n, walk.seed).to(device)
        stops = [torch.full((walk.n,), c, dtype=torch.long) for c in labels[: walk.keyframes]]
        stops += [stops[i % len(stops)] for i in range(len(stops), walk.keyframes)]
        for k in range(walk.keyframes):
            y, target = stops[k].to(device), stops[(k + 1) % walk.keyframes].to(device)
            G.labels_for(walk.n, [int(y[0])])  # the class is in range
            for f in range(walk.frames):
                t = ease(f / walk.frames)
                mixing = mixed_classes(G.net, target, t) if t else contextlib.nullcontext()
                with mixing:
                    yield draw(z, y)
        return
    y = G.labels_for(walk.n, labels)
    y = None if y is None else y.to(device)
    stops = [G.latents(walk.n, walk.seed + k).to(device) for k in range(walk.keyframes)]
    for k in range(walk.keyframes):
        a, b = stops[k], stops[(k + 1) % walk.keyframes]
        yield draw(a, y)  # the keyframe: `ganrun sample`'s very batch
        between = [slerp(a, b, ease(f / walk.frames)) for f in range(1, walk.frames)]
        if between:  # one call for the segment: big batches are ~10x faster on a CPU
            ys = None if y is None else y.repeat(len(between))
            yield from draw(torch.cat(between), ys).split(walk.n)

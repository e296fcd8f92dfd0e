"""A weighted term of a player's loss that may run lazily: the base of D's penalties and
G's regularisers.

every=k: the term is computed on every k-th step of its player only and weighted by k there
(lazy regularisation, StyleGAN2), so its average strength does not depend on k.
"""

from __future__ import annotations


class LazyTerm:
    def __init__(self, weight: float, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"{type(self).__name__}: interval every={every} must be >= 1")
        self.weight = weight
        self.every = every

    def due(self, index: int) -> bool:
        """Whether the term runs on its player's step `index` (0-based)."""
        return index % self.every == 0

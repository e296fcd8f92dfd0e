"""augment=ada: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data"), the 'bgc' pipeline.

Like DiffAugment it sits inside D (AugmentedDiscriminator), so every image D sees, real or
generated, in both players' steps and in R1, is augmented, and the pipeline is differentiable
(twice: R1 through it). Unlike DiffAugment the strength adapts: each op is applied with
probability p, and p follows D's overfitting signal r_t (ada_tuner.AdaptiveP), which the GAN
method feeds after every D step through `observe_real_logits`. Geometric ops run first (one
warp, ada_geometric), colour ops second (one colour matrix, ada_color).
"""

from __future__ import annotations

from dataclasses import fields

from torch import Tensor, nn

from ganrun.augment import ada_color, ada_geometric
from ganrun.augment.ada_color import ColorStrengths
from ganrun.augment.ada_geometric import GeometricStrengths
from ganrun.augment.ada_tuner import AdaptiveP, Logs
from ganrun.errors import GanrunError


def _check(ok: bool, key: str, value: object, rule: str) -> None:
    if not ok:
        raise GanrunError(f"augment.{key}={value} is invalid: {rule}.")


def check_settings(
    p: float, target: float | None, interval: int, kimg: float, p_max: float, strengths: dict
) -> None:
    """Every key of conf/augment/ada.yaml in range, before any work."""
    _check(
        0.0 <= p_max <= 1.0, "p_max", p_max, "the cap on p must lie in [0, 1] (paper: none; 0.8)"
    )
    top = p_max if target is not None else 1.0
    _check(
        0.0 <= p <= top,
        "p",
        p,
        f"the starting probability must lie in [0, {top}] (p_max caps it; use 0 to start "
        "un-augmented, or target=null with p in [0, 1] for a fixed p)",
    )
    _check(
        target is None or -1.0 < target < 1.0,
        "target",
        target,
        "r_t = E[sign(D(real))] lies in [-1, 1]; use a value inside it (paper: 0.6) or null for "
        "a fixed p",
    )
    _check(
        isinstance(interval, int) and interval >= 1,
        "interval",
        interval,
        "p is adjusted every `interval` D steps: a whole number >= 1 (paper: 4)",
    )
    _check(kimg > 0, "kimg", kimg, "the speed of p in thousands of images must be > 0 (paper: 500)")
    for key, value in strengths.items():
        _check(value >= 0, key, value, "multipliers and strengths must be >= 0 (0 disables)")


def _pick(cls: type, values: dict) -> object:
    """The dataclass `cls` from the entries of `values` that are its fields."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: float(v) for k, v in values.items() if k in names})


class ADA(nn.Module):
    """The bgc pipeline at probability p (see conf/augment/ada.yaml for every key)."""

    def __init__(
        self,
        p: float = 0.0,
        target: float | None = 0.6,
        interval: int = 4,
        kimg: float = 500.0,
        p_max: float = 0.8,
        **strengths: float,
    ) -> None:
        super().__init__()
        known = {f.name for f in fields(GeometricStrengths)} | {
            f.name for f in fields(ColorStrengths)
        }
        unknown = sorted(set(strengths) - known)
        if unknown:
            raise GanrunError(
                f"augment=ada has no key(s) {unknown}; its op keys are {', '.join(sorted(known))}."
            )
        check_settings(p, target, interval, kimg, p_max, strengths)
        self.geometric = _pick(GeometricStrengths, strengths)
        self.color = _pick(ColorStrengths, strengths)
        g, c = self.geometric, self.color
        self.any_geometric = (
            max(g.xflip, g.rotate90, g.xint, g.scale, g.rotate, g.aniso, g.xfrac) > 0
        )
        self.any_color = max(c.brightness, c.contrast, c.lumaflip, c.hue, c.saturation) > 0
        self.tuner = AdaptiveP(p, target, interval, kimg, p_max)

    @property
    def p(self) -> Tensor:
        return self.tuner.p

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise GanrunError(
                "augment=ada works on images; this dataset gives 2-D points. "
                "Drop the augment option for ring8/grid25."
            )
        if self.any_geometric:
            x = ada_geometric.augment(x, self.p, self.geometric)
        if self.any_color:
            x = ada_color.augment(x, self.p, self.color)
        return x

    def observe_real_logits(self, logits: Tensor) -> Logs:
        """D's logits on this D step's augmented reals: p's statistics; logs aug/p, aug/rt."""
        return self.tuner.observe(logits)

"""Types and ranges of the config keys that have no dataclass schema, checked before any work.

The trainer keys have a schema (ganrun.config.TrainerConfig) and their ranges live in
ganrun.build.check_trainer; every other group is a free-form tree of `_target_` kwargs, so
its values are checked here, against one table of rules. A rule names keys by a pattern of
the config tree (`*` is any one name: `optimizer.*.lr` is every player's learning rate),
so a new loss, model or optimizer YAML is covered by the keys it has, not by its name.

The CLI runs `check_config` on the composed config before Hydra makes the run folder
(ganrun.cli.preflight), and on each sweep job's config before the job trains.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganrun.errors import GanrunError


@dataclass(frozen=True)
class Number:
    """A finite number (an int, or a float unless `integer`; never a bool) within bounds."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    integer: bool = False

    def __call__(self, value: Any) -> bool:
        kinds = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return False
        return not (
            (self.gt is not None and value <= self.gt)
            or (self.ge is not None and value < self.ge)
            or (self.lt is not None and value >= self.lt)
            or (self.le is not None and value > self.le)
        )

    @property
    def noun(self) -> str:
        return "integer" if self.integer else "number"

    @property
    def bounds(self) -> str:
        """The bounds in words: ' in [0, 1)', ' > 0', ' >= 1', or '' when there are none."""
        low = _end(self.ge, "[", ">=") or _end(self.gt, "(", ">")
        high = _end(self.le, "]", "<=") or _end(self.lt, ")", "<")
        if low and high:
            return f" in {low[1]}{low[0]}, {high[0]}{high[1]}"
        end = low or high
        return f" {end[2]} {end[0]}" if end else ""

    def __str__(self) -> str:
        return f"{'an' if self.integer else 'a'} {self.noun}{self.bounds}"


def _end(value: float | None, bracket: str, op: str) -> tuple[str, str, str] | None:
    if value is None:
        return None
    return (str(int(value)) if float(value).is_integer() else f"{value:g}"), bracket, op


@dataclass(frozen=True)
class ListOf:
    """A list of `length` items, each passing `item`."""

    length: int
    item: Number

    def __call__(self, value: Any) -> bool:
        return isinstance(value, list) and len(value) == self.length and all(map(self.item, value))

    def __str__(self) -> str:
        return f"a list of {self.length} {self.item.noun}s{self.item.bounds}"


@dataclass(frozen=True)
class OrNull:
    """null, or a value passing `check`."""

    check: Number

    def __call__(self, value: Any) -> bool:
        return value is None or self.check(value)

    def __str__(self) -> str:
        return f"null or {self.check}"


@dataclass(frozen=True)
class OneOf:
    """One of a few values (compared with their type: 1 is not true)."""

    choices: tuple[Any, ...]

    def __call__(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.choices)

    def __str__(self) -> str:
        return f"one of {', '.join(show(c) for c in self.choices)}"


Check = Number | ListOf | OrNull | OneOf
BOOL = OneOf((True, False))
COUNT = Number(ge=1, integer=True)  # widths, depths, sizes: 1 or more
NON_NEGATIVE = Number(ge=0)
POSITIVE = Number(gt=0)
SEED = Number(ge=0, lt=2**32, integer=True)  # NumPy's RandomState takes 32-bit seeds


@dataclass(frozen=True)
class Rule:
    pattern: str  # dotted config key; `*` matches any one name
    check: Check  # what the value must be (its str() is the message's wording)
    example: str  # a valid value, as it would be typed on the command line


# fmt: off
RULES: tuple[Rule, ...] = (
    # top level
    Rule("seed",                              SEED,                          "0"),
    # optimizers (torch.optim.*: Adam, RMSprop, ...), one entry per player
    Rule("optimizer.*.lr",                    POSITIVE,                      "2e-4"),
    Rule("optimizer.*.weight_decay",          NON_NEGATIVE,                  "0"),
    Rule("optimizer.*.betas",                 ListOf(2, Number(ge=0, lt=1)), "[0.5,0.999]"),
    Rule("optimizer.*.eps",                   POSITIVE,                      "1e-8"),
    Rule("optimizer.*.momentum",              NON_NEGATIVE,                  "0"),
    Rule("optimizer.*.alpha",                 Number(ge=0, le=1),            "0.99"),
    # models: G and D under model.generator / model.discriminator
    Rule("model.z_dim",                       COUNT,                         "100"),
    Rule("model.*.z_dim",                     COUNT,                         "100"),
    Rule("model.*.width",                     COUNT,                         "64"),
    Rule("model.*.depth",                     OrNull(COUNT),                 "3"),
    Rule("model.*.slope",                     NON_NEGATIVE,                  "0.2"),
    Rule("model.*.dropout",                   Number(ge=0, lt=1),            "0.0"),
    Rule("model.virtual_bn",                  BOOL,                          "false"),
    Rule("model.sn_g",                        BOOL,                          "false"),
    Rule("model.sn_d",                        BOOL,                          "true"),
    # losses, D's penalties and G's regularisers (weight; lazy: every k-th step)
    Rule("loss.real_label",                   Number(ge=0, le=1),            "0.9"),
    Rule("loss.real_target",                  Number(),                      "1.0"),
    Rule("loss.fake_target",                  Number(),                      "0.0"),
    Rule("loss.clip",                         POSITIVE,                      "0.01"),
    Rule("loss.penalties.*.weight",           NON_NEGATIVE,                  "10"),
    Rule("loss.penalties.*.every",            COUNT,                         "16"),
    Rule("loss.penalties.*.center",           NON_NEGATIVE,                  "1.0"),
    Rule("loss.penalties.*.scale",            NON_NEGATIVE,                  "0.5"),
    Rule("loss.penalties.*.one_sided",        BOOL,                          "true"),
    Rule("method.g_regularisers.*.weight",    NON_NEGATIVE,                  "1e-4"),
    Rule("method.g_regularisers.*.every",     COUNT,                         "4"),
    Rule("method.lazy_regularisation_correction", BOOL,                      "true"),
    Rule("conditioning.*.embed_dim",          COUNT,                         "32"),
    Rule("conditioning.*.weight",             NON_NEGATIVE,                  "1.0"),
    # datasets
    Rule("dataset.resolution",                COUNT,                         "32"),
    Rule("dataset.channels",                  OneOf((1, 3)),                 "3"),
    Rule("dataset.num_workers",               Number(ge=0, integer=True),    "2"),
    Rule("dataset.download",                  BOOL,                          "false"),
    Rule("dataset.seed",                      SEED,                          "0"),
    Rule("dataset.n_modes",                   COUNT,                         "8"),
    Rule("dataset.side",                      COUNT,                         "5"),
    Rule("dataset.radius",                    POSITIVE,                      "1.0"),
    Rule("dataset.spacing",                   POSITIVE,                      "2.0"),
    Rule("dataset.std",                       POSITIVE,                      "0.05"),
    # image metrics and their feature extractor
    Rule("metrics.features.batch_size",       COUNT,                         "200"),
    Rule("metrics.*.splits",                  COUNT,                         "10"),
    Rule("metrics.*.subsets",                 COUNT,                         "100"),
    Rule("metrics.*.subset_size",             COUNT,                         "1000"),
    Rule("metrics.*.k",                       COUNT,                         "3"),
    Rule("metrics.*.seed",                    SEED,                          "0"),
)
# fmt: on


def show(value: Any) -> str:
    """A value as it is typed on the command line (null, true, [0.5,0.999])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return f"[{','.join(show(v) for v in value)}]"
    return str(value)


def matches(pattern: str, key: str) -> bool:
    parts, names = pattern.split("."), key.split(".")
    return len(parts) == len(names) and all(map(fnmatchcase, names, parts))


def leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every value in the tree; lists whole, as Python lists.

    Interpolations are left out: the key they point to is checked itself, so a mistake is
    named once, where it was typed (model.z_dim, not model.generator.z_dim too).
    """
    for key in node.keys():
        full = f"{prefix}{key}"
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        value = node[key]
        if isinstance(value, DictConfig):
            yield from leaves(value, f"{full}.")
        elif isinstance(value, ListConfig):
            try:
                yield full, OmegaConf.to_container(value, resolve=True)
            except OmegaConfBaseException:  # an interpolation inside: Hydra reports it
                continue
        else:
            yield full, value


def violations(cfg: DictConfig, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """One sentence per value that breaks its rule, naming the key, the value and a fix."""
    out = []
    for key, value in leaves(cfg):
        for rule in rules:
            if matches(rule.pattern, key) and not rule.check(value):
                out.append(f"{key}={show(value)} must be {rule.check} (e.g. {key}={rule.example}).")
                break
    return out


def check_config(cfg: DictConfig) -> None:
    """GanrunError listing every value of `cfg` that breaks its rule (one paragraph)."""
    found = violations(cfg)
    if found:
        raise GanrunError(" ".join(found))

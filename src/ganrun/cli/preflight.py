"""Compose the config once before Hydra runs, so config mistakes get ganrun's own message.

Hydra's messages name the problem but suggest `+key=value` for a typo, which only moves
the error. Here an unknown key gets the closest valid keys, a bad group option the list
of options, a wrong type the expected type, a value out of its range (ganrun.checks)
what it must be; always one paragraph and exit code 2. Sweeps get the same messages.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganrun.checks import check_config
from ganrun.errors import GanrunError


def _compose(conf_dir: str, task: str, overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(conf_dir, version_base="1.3", job_name=task):
        return compose(task, overrides=list(overrides))


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def _valid_keys(conf_dir: str, task: str, full_key: str) -> list[str]:
    parent, _, _ = full_key.rpartition(".")
    cfg = _compose(conf_dir, task, [])
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return []
    return [f"{parent}.{k}" if parent else str(k) for k in node.keys()]


def explain(err: BaseException, conf_dir: str, task: str) -> str:
    """One paragraph naming the bad key or option and what is valid."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group = err.missing_cfg_file.rsplit("/", 1)[0]
        # a list selection (metrics=[fid,nope]) reports no options: read them from the folder
        options = err.options or [p.stem for p in (Path(conf_dir) / group).glob("*.yaml")]
        if options:
            return f"{first.rstrip('.')}. Valid options for {group}: {', '.join(sorted(options))}."
    cause = _root_cause(err)
    full_key = getattr(cause, "full_key", None)
    if full_key and isinstance(cause, (KeyError, AttributeError)):
        keys = _valid_keys(conf_dir, task, full_key)
        close = difflib.get_close_matches(full_key, keys, n=3, cutoff=0.6)
        hint = f"Did you mean {' or '.join(close)}? " if close else ""
        valid = f"Valid keys here: {', '.join(keys)}" if keys else "That section has no keys"
        return (
            f"unknown config key {full_key!r}. {hint}{valid}. "
            f"`ganrun {task} --cfg job` prints the whole config."
        )
    detail = str(cause).strip().splitlines()[0] if cause is not err else ""
    return f"{first}{': ' + detail if detail else ''}. `ganrun {task} --cfg job` prints the valid keys."


SWEEP_FLAGS = ("-m", "--multirun")
# a grid of more jobs than this has each swept value composed once, not each grid cell
MAX_SWEEP_COMPOSES = 32


def sweep_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """The overrides of each job of a sweep, split as Hydra's basic sweeper does (`a=1,2`: a
    job each; several swept keys: every combination; `range()`, `choice()` too).

    Sweeps no list can hold (`interval()` for Optuna) or that need the config loader
    (`glob()`) are left to the sweeper: their key keeps its configured value here. A grid of
    more than MAX_SWEEP_COMPOSES jobs is covered by each swept value once, beside the other
    keys' first values.
    """
    choices = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if not override.is_sweep_override():
            choices.append([override.input_line])
            continue
        try:
            values = list(override.sweep_string_iterator())
        except HydraException:
            continue
        choices.append([f"{override.get_key_element()}={v}" for v in values])
    if math.prod(len(c) for c in choices) <= MAX_SWEEP_COMPOSES:
        return [list(job) for job in itertools.product(*choices)]
    first = [c[0] for c in choices]
    return [first] + [
        [*first[:i], value, *first[i + 1 :]] for i, c in enumerate(choices) for value in c[1:]
    ]


def _composed(conf_dir: str, task: str, overrides: Sequence[str], sweep: bool) -> DictConfig:
    """The config of `overrides` (of each of its jobs when `sweep`), or GanrunError."""
    try:
        jobs = sweep_jobs(overrides) if sweep else [list(overrides)]
        with initialize_config_dir(conf_dir, version_base="1.3", job_name=task):
            cfgs = [compose(task, overrides=job) for job in jobs]
    except (HydraException, OmegaConfBaseException) as err:
        raise GanrunError(explain(err, conf_dir, task)) from None
    for cfg in cfgs:
        check_missing(cfg)
    return cfgs[0]


def check_missing(cfg: DictConfig) -> None:
    """GanrunError naming the required values (???) the overrides left unset."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise GanrunError(
            f"missing required value{'s' if len(missing) > 1 else ''}: {', '.join(missing)}. "
            f"Pass {' '.join(k + '=...' for k in missing)} on the command line."
        )


def preflight(conf_dir: str, task: str, args: Sequence[str]) -> DictConfig | None:
    """The composed config with its values checked (ganrun.checks), or GanrunError when the
    overrides cannot compose or a value is wrong: before Hydra makes the run folder.

    A sweep (-m) has every job composed here, so an override that cannot compose gets the
    message a single run gets and no job starts; each job checks its own values (a bad one
    fails that job, recorded in its job.json, and the sweep goes on). Returns None for a
    sweep, and for other flags (--help, --cfg), which go to Hydra as they are.
    """
    flags = [a for a in args if a.startswith("-")]
    overrides = [
        a for a in args if not a.startswith("-") and not a.lstrip("+~").startswith("hydra.")
    ]
    if flags:
        if set(flags) <= set(SWEEP_FLAGS):
            _composed(conf_dir, task, overrides, sweep=True)
        return None
    cfg = _composed(conf_dir, task, overrides, sweep=False)
    check_config(cfg)
    return cfg

"""Compose the config once before Hydra runs, so config mistakes get ganrun's own message.

Hydra's messages name the problem but suggest `+key=value` for a typo, which only moves
the error. Here an unknown key gets the closest valid keys, a bad group option the list
of options, a wrong type the expected type; always one paragraph and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

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


def preflight(conf_dir: str, task: str, args: Sequence[str]) -> DictConfig | None:
    """The composed config, or GanrunError when the overrides cannot compose.

    Sweeps and flags (-m, --help, --cfg) go to Hydra as they are (returns None).
    """
    if any(a.startswith("-") for a in args):
        return None
    overrides = [a for a in args if not a.lstrip("+~").startswith("hydra.")]
    try:
        cfg = _compose(conf_dir, task, overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise GanrunError(explain(err, conf_dir, task)) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise GanrunError(
            f"missing required value{'s' if len(missing) > 1 else ''}: {', '.join(missing)}. "
            f"Pass {' '.join(k + '=...' for k in missing)} on the command line."
        )
    return cfg

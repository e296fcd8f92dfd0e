"""One `ganrun train` run (no -m, no --help or --cfg) with the config composed once.

hydra.main composes a config twice for a single run (get_mode, then run), and ganrun's
preflight composed it a third time for its messages: 0.2-0.8 s each on a 2-core CPU. Here
one Hydra instance composes it once, the preflight's checks run on that config (the same
GanrunError messages, before anything is written), and Hydra's own run_job runs the task on
it: the same run folder, HydraConfig, logging and callbacks as hydra.main's run mode
(`hydra.mode=RUN` is added as hydra.main adds it). Sweeps and flags go through hydra.main.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from hydra import version
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import run_job
from hydra.errors import HydraException
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from ganrun.checks import check_config
from ganrun.cli.preflight import check_missing, explain
from ganrun.errors import GanrunError


def single_run(args: Sequence[str]) -> bool:
    """Whether these command-line arguments are one plain run (overrides only, no flags)."""
    return not any(a.startswith("-") for a in args)


def _task_config(cfg: DictConfig) -> DictConfig:
    """The config without its hydra node, as the task receives it."""
    task_cfg = copy.deepcopy(cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def compose_checked(
    hydra: Any, conf_dir: str, task: str, overrides: list[str]
) -> tuple[DictConfig, DictConfig]:
    """The run's config with its hydra node and without it, or the preflight's GanrunError."""
    try:
        cfg = hydra.compose_config(
            config_name=task,
            overrides=overrides,
            run_mode=RunMode.RUN,
            with_log_configuration=True,
        )
    except (HydraException, OmegaConfBaseException) as err:
        GlobalHydra.instance().clear()  # explain() composes again to list the valid keys
        raise GanrunError(explain(err, conf_dir, task)) from None
    task_cfg = _task_config(cfg)
    check_missing(task_cfg)
    check_config(task_cfg)
    return cfg, task_cfg


def run_once(
    conf_dir: str,
    task: str,
    args: Sequence[str],
    task_function: Callable[[DictConfig], Any],
    before_run: Callable[[DictConfig], None] = lambda cfg: None,
) -> None:
    """Hydra's run mode (Hydra.run) on a config composed once; `before_run(cfg)` sees the
    checked config (without its hydra node) first. Raises GanrunError before the run folder
    is made when the overrides do not compose or a value is wrong."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path, run_and_report

    version.setbase("1.3")  # as hydra.main(version_base="1.3") does
    search_path = create_automatic_config_search_path(None, None, conf_dir)
    hydra = Hydra.create_main_hydra2(task_name=task, config_search_path=search_path)
    try:
        cfg, task_cfg = compose_checked(hydra, conf_dir, task, [*args, "hydra.mode=RUN"])
        before_run(task_cfg)
        callbacks = Callbacks(cfg)
        callbacks.on_run_start(config=cfg, config_name=task)

        def job() -> None:
            ret = run_job(
                hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
                task_function=task_function,
                config=cfg,
                job_dir_key="hydra.run.dir",
                job_subdir_key=None,
                configure_logging=True,
            )
            callbacks.on_run_end(config=cfg, config_name=task, job_return=ret)
            _ = ret.return_value  # raises the task's exception, as Hydra.run does

        run_and_report(job)  # a failed task: Hydra's short traceback and exit code 1
    finally:
        GlobalHydra.instance().clear()

"""`ganrun <task> [hydra overrides]`: each task is a hydra.main app on conf/<task>.yaml."""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console

from ganrun.checks import check_config
from ganrun.cli.preflight import preflight
from ganrun.cli.single_run import run_once, single_run
from ganrun.config import CONF, register
from ganrun.errors import GanrunError, RunInterrupted
from ganrun.training.run_lock import LOCK_NAME


def _train(cfg: DictConfig) -> dict | float:
    """Train; returns the objective when `objective.metric` is set (for Optuna), else the
    last logged metrics. job.json in the run folder records how the job ended."""
    import torch

    from ganrun.tracking.jobs import recorded
    from ganrun.tracking.objective import Objective, check_evaluated, objective_value
    from ganrun.tracking.runs_table import read_metrics
    from ganrun.training.distributed import context
    from ganrun.training.train import train

    hc = HydraConfig.get()
    run_dir, overrides = Path(hc.runtime.output_dir), list(hc.overrides.task)
    if not cfg.resume:  # a SLURM job requeued after a preemption continues its own run
        from ganrun.training.resume import requeued_resume

        cfg.resume = requeued_resume(run_dir)
    if not context().is_main:  # DDP ranks > 0 train their share; rank 0 records the job
        return train(cfg, run_dir, overrides, hc)
    objective = Objective.from_config(cfg.objective)
    with recorded(run_dir, overrides, keep_failed=_multirun()) as record:
        if _multirun():  # preflight checked a single run's values; a sweep job checks its own
            check_config(cfg)
        record.threads = cfg.trainer.threads or torch.get_num_threads()
        if not cfg.resume:  # a resumed run's cadences come from its checkpoint
            check_evaluated(objective, cfg.trainer.eval_every)
        last = train(cfg, run_dir, overrides, hc)
        if objective is None:
            return last
        value = objective_value(objective, read_metrics(run_dir))
        record.objective = objective.as_dict(value)
    return value


def _sample(cfg: DictConfig) -> str:
    from ganrun.sampling.command import sample

    return str(sample(cfg))


def _eval(cfg: DictConfig) -> dict:
    from ganrun.evaluation.command import evaluate

    return evaluate(cfg)


def _translate(cfg: DictConfig) -> str:
    from ganrun.sampling.translate import translate

    return str(translate(cfg))


def _export(cfg: DictConfig) -> str:
    from ganrun.sampling.export import export

    return str(export(cfg))


def _video(cfg: DictConfig) -> list[str]:
    from ganrun.sampling.video import video

    return [str(p) for p in video(cfg)]


def _plot(argv: list[str]) -> None:
    from ganrun.tracking.plots import main as plot_main

    plot_main(argv)


def _report(argv: list[str]) -> None:
    from ganrun.tracking.report import main as report_main

    report_main(argv)


def _runs(argv: list[str]) -> None:
    from ganrun.tracking.runs_table import main as runs_main

    runs_main(argv)


class Task(NamedTuple):
    fn: Callable[[DictConfig], Any]
    doc: str
    # a multirun goes on past a failed job: the task records it (job.json) for the summary
    records_jobs: bool = False


TASKS: dict[str, Task] = {
    "train": Task(_train, "train a GAN; writes a run folder (outputs/<date>/<time>/)", True),
    "sample": Task(_sample, "draw samples from a checkpoint: ckpt=<file> n=64 out=<dir> seed=0"),
    "translate": Task(
        _translate,
        "a translation run on images: ckpt=<file> input=<folder|test> out=<dir> [direction= domain=]",
    ),
    "export": Task(
        _export,
        "a checkpoint's generator: ckpt=<file> format=safetensors|torchscript|onnx out=<dir>",
    ),
    "eval": Task(
        _eval, "FID/KID/IS/PR: ckpt=<file> metrics=[fid,kid] | real=<dir|dataset> fake=<dir|npz>"
    ),
    "video": Task(
        _video, "mp4 + gif: ckpt=<file> kind=interpolate|translate n=16 | run=<run> kind=timelapse"
    ),
}
# plain commands (argparse, no Hydra config): name -> (function of the arguments, doc)
COMMANDS: dict[str, tuple[Callable[[list[str]], None], str]] = {
    "runs": (_runs, "table of existing runs or sweeps, no training: ganrun runs multirun/<date>"),
    "plot": (_plot, "metric plots into <folder>/plots/: ganrun plot <run or sweep folder>"),
    "report": (_report, "one self-contained HTML report: ganrun report <run or sweep folder>"),
}


def usage() -> str:
    lines = [
        "usage: ganrun <task> [key=value ...] [-m]   (Hydra overrides; `ganrun <task> --help`)",
        "",
        "tasks:",
        *(f"  {name:<9} {task.doc}" for name, task in TASKS.items()),
        *(f"  {name:<9} {doc}" for name, (_, doc) in COMMANDS.items()),
        "",
        "config groups (pick one with group=option, e.g. model=mlp loss=hinge",
        "               or model/discriminator=patchgan):",
    ]
    for group in sorted(p for p in CONF.rglob("*") if p.is_dir()):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if not options:  # a folder of folders (hydra/)
            continue
        name = group.relative_to(CONF).as_posix()
        lines.append(f"  {name:<20} {', '.join(options)}")
    lines += [
        "  (hydra/launcher also: joblib, submitit_local, submitit_slurm from the Hydra plugins)",
        "",
        "example: ganrun train model=dcgan loss=wgan_gp dataset=mnist dataset.root=data",
        "sweep:   ganrun train -m loss=ns,hinge optimizer.g.lr=1e-4,2e-4   (summary.csv at the end)",
    ]
    return "\n".join(lines)


def _multirun() -> bool:
    return HydraConfig.get().mode == RunMode.MULTIRUN


def _guarded(fn: Callable, records_jobs: bool) -> Callable:
    """Run the task; a GanrunError becomes one clear message and exit code 2, no traceback.

    In a multirun a task that records its jobs goes on past a failure instead: the error is
    printed (with the traceback when unexpected), the job returns no objective (Optuna marks
    the trial failed) and the sweep summary lists it; the sweep's exit code reports it.
    """

    def task(cfg: DictConfig):
        if records_jobs and _multirun():
            return _carry_on(fn, cfg)
        try:
            return fn(cfg)
        except RunInterrupted as err:
            _print_error(str(err))
            sys.exit(err.exit_code)
        except GanrunError as err:
            _print_error(str(err))
            _remove_if_empty(HydraConfig.get().runtime.output_dir)
            sys.exit(2)

    return task


def _carry_on(fn: Callable, cfg: DictConfig) -> Any:
    """A sweep job: report a failure and return None (no objective) instead of ending the sweep."""
    try:
        return fn(cfg)
    except RunInterrupted as err:  # a signal stops the whole sweep, not just this job
        _print_error(str(err))
        sys.exit(err.exit_code)
    except Exception as err:
        from ganrun.errors import first_line

        if not isinstance(err, GanrunError):
            traceback.print_exc()
        job = HydraConfig.get().job
        _print_error(f"job {job.num} ({job.override_dirname}) failed: {first_line(err)}")
        return None


def _print_error(message: str) -> None:
    console = Console(stderr=True, soft_wrap=True)
    console.print("[bold red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False)


def _remove_if_empty(folder: str) -> None:
    """Hydra makes the run folder before the task starts; a run that failed up front leaves none
    (its released run lock, the only file it made, goes too)."""
    path = Path(folder)
    if not path.is_dir() or path == Path.cwd():
        return
    lock = path / LOCK_NAME
    if [p.name for p in path.iterdir()] == [LOCK_NAME]:
        lock.unlink()
    if not any(path.iterdir()):
        path.rmdir()


def _resume_run_dir(args: list[str]) -> list[str]:
    """`resume=<ckpt or run>` continues in that run's folder unless hydra.run.dir is given."""
    values = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not values or any(a.startswith("hydra.run.dir=") for a in args) or "-m" in args:
        return args
    from ganrun.training.checkpoint import run_folder_of  # imports torch: only when resuming

    target = Path(values[-1])
    ckpt = target / "checkpoints" / "last.pt" if target.is_dir() else target
    if not ckpt.is_file():
        return args  # train() reports the missing checkpoint
    return [*args, f"hydra.run.dir='{run_folder_of(ckpt)}'"]


def _real_dataset(args: list[str]) -> list[str]:
    """`ganrun eval real=<dataset name>` (not a path on disk) is `dataset=<name>`, so that
    dataset.root=, dataset.split=, ... compose as in `ganrun train`."""
    out = []
    for arg in args:
        key, _, value = arg.partition("=")
        named = "/" not in value and (CONF / "dataset" / f"{value}.yaml").is_file()
        named = named and not Path(value).exists()
        out.append(f"dataset={value}" if key == "real" and named else arg)
    return out


def main(argv: list[str] | None = None) -> None:
    """The `ganrun` program (argv None: sys.argv) or a call with its arguments (tests)."""
    if argv is not None:
        _main(list(argv))
        return
    try:
        _main(sys.argv[1:])
    finally:
        # the process ends here: without this, interpreter exit runs a last garbage collection
        # over the millions of objects torch and torch._dynamo created (~0.7 s on a 2-core CPU)
        gc.freeze()


def _main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    task = argv[0]
    if task in COMMANDS:
        try:
            COMMANDS[task][0](argv[1:])
        except GanrunError as err:
            _print_error(str(err))
            sys.exit(2)
        return
    if task not in TASKS:
        _print_error(
            f"unknown task {task!r}. Tasks: {', '.join([*TASKS, *COMMANDS])}. "
            f"Run `ganrun --help` for the list with the config groups."
        )
        sys.exit(2)
    args = argv[1:]
    if task == "train":
        args = _resume_run_dir(args)
    if task == "eval":
        args = _real_dataset(args)
    register()
    if task == "train" and single_run(args) and not _under_torchrun():
        _or_exit(_train_once, args)  # the config composed once (start-up: cli/single_run.py)
        return
    cfg = _or_exit(preflight, str(CONF), task, args)
    if task == "train":
        _train_processes(cfg, args)
    else:
        _run_hydra(task, args)


def _under_torchrun() -> bool:
    """Launched as a torchrun worker (its ranks agree on the run folder: _train_processes)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "LOCAL_WORLD_SIZE" in os.environ


def _train_once(args: list[str]) -> None:
    """A plain `ganrun train` run: composed and checked once; trainer.devices=N relaunches
    under torchrun from here, as _train_processes does."""
    from ganrun.training import distributed  # imports torch: after the config is checked

    def relaunch_if_devices(cfg: DictConfig) -> None:
        devices = distributed.launch_devices(cfg, args)
        if devices:
            sys.exit(distributed.relaunch(devices, ["train", *args]))

    fn, _, records_jobs = TASKS["train"]
    run_once(str(CONF), "train", args, _guarded(fn, records_jobs), relaunch_if_devices)


def _or_exit(fn: Callable, *args: Any) -> Any:
    """fn(*args); a GanrunError becomes one clear message and exit code 2."""
    try:
        return fn(*args)
    except GanrunError as err:
        _print_error(str(err))
        sys.exit(2)


def _run_hydra(task: str, args: list[str]) -> None:
    sys.argv = [f"ganrun {task}", *args]
    fn, _, records_jobs = TASKS[task]
    hydra.main(config_path=str(CONF), config_name=task, version_base="1.3")(
        _guarded(fn, records_jobs)
    )()


def _train_processes(cfg: DictConfig | None, args: list[str]) -> None:
    """One process, or DDP: `trainer.devices=N` relaunches this command as N torchrun workers;
    under torchrun all ranks share one process group and rank 0's run folder."""
    from ganrun.training import distributed  # imports torch: not for --help or a config mistake

    devices = _or_exit(distributed.launch_devices, cfg, args)
    if devices:  # this process only launches the workers and waits for them
        sys.exit(distributed.relaunch(devices, ["train", *args]))
    with distributed.session():  # the process group under torchrun, destroyed also on failure
        _run_hydra("train", _or_exit(distributed.agreed_run_dir, str(CONF), "train", args))


if __name__ == "__main__":
    main()

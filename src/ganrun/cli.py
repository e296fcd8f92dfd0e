"""`ganrun <task> [hydra overrides]`: each task is a hydra.main app on conf/<task>.yaml."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console

from ganrun.config import register
from ganrun.errors import GanrunError
from ganrun.preflight import preflight

CONF = Path(__file__).parent / "conf"


def _train(cfg: DictConfig) -> dict:
    from ganrun.train import train

    hc = HydraConfig.get()
    return train(cfg, hc.runtime.output_dir, list(hc.overrides.task), hc)


def _sample(cfg: DictConfig) -> str:
    from ganrun.sample import sample

    return str(sample(cfg))


def _eval(cfg: DictConfig) -> dict:
    from ganrun.eval import evaluate

    return evaluate(cfg)


TASKS: dict[str, tuple[Callable, str]] = {
    "train": (_train, "train a GAN; writes a run folder (outputs/<date>/<time>/)"),
    "sample": (_sample, "draw samples from a checkpoint: ckpt=<file> n=64 out=<dir> seed=0"),
    "eval": (
        _eval,
        "FID/KID/IS/PR: ckpt=<file> metrics=[fid,kid] | real=<dir|dataset> fake=<dir|npz>",
    ),
}


def usage() -> str:
    lines = [
        "usage: ganrun <task> [key=value ...] [-m]   (Hydra overrides; `ganrun <task> --help`)",
        "",
        "tasks:",
        *(f"  {name:<8} {doc}" for name, (_, doc) in TASKS.items()),
        "",
        "config groups (pick one with group=option, e.g. model=mlp loss=hinge",
        "               or model/discriminator=patchgan):",
    ]
    for group in sorted(p for p in CONF.rglob("*") if p.is_dir()):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        name = group.relative_to(CONF).as_posix()
        lines.append(f"  {name:<20} {', '.join(options)}")
    lines += ["", "example: ganrun train model=dcgan loss=wgan_gp dataset=mnist dataset.root=data"]
    return "\n".join(lines)


def _guarded(fn: Callable) -> Callable:
    """Run the task; a GanrunError becomes one clear message and exit code 2, no traceback."""

    def task(cfg: DictConfig):
        try:
            return fn(cfg)
        except GanrunError as err:
            _print_error(str(err))
            _remove_if_empty(HydraConfig.get().runtime.output_dir)
            sys.exit(2)

    return task


def _print_error(message: str) -> None:
    console = Console(stderr=True, soft_wrap=True)
    console.print("[bold red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False)


def _remove_if_empty(folder: str) -> None:
    """Hydra makes the run folder before the task starts; a run that failed up front leaves none."""
    path = Path(folder)
    if path.is_dir() and path != Path.cwd() and not any(path.iterdir()):
        path.rmdir()


def _resume_run_dir(args: list[str]) -> list[str]:
    """`resume=<ckpt or run>` continues in that run's folder unless hydra.run.dir is given."""
    values = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not values or any(a.startswith("hydra.run.dir=") for a in args) or "-m" in args:
        return args
    from ganrun.state import run_folder_of  # imports torch: only when resuming

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
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    task = argv[0]
    if task not in TASKS:
        _print_error(
            f"unknown task {task!r}. Tasks: {', '.join(TASKS)}. "
            f"Run `ganrun --help` for the list with the config groups."
        )
        sys.exit(2)
    args = argv[1:]
    if task == "train":
        args = _resume_run_dir(args)
    if task == "eval":
        args = _real_dataset(args)
    register()
    try:
        preflight(str(CONF), task, args)
    except GanrunError as err:
        _print_error(str(err))
        sys.exit(2)
    sys.argv = [f"ganrun {task}", *args]
    fn, _ = TASKS[task]
    hydra.main(config_path=str(CONF), config_name=task, version_base="1.3")(_guarded(fn))()


if __name__ == "__main__":
    main()

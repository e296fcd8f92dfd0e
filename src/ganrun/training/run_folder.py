"""The run folder before training: refuse to overwrite another run, write .hydra/ as Hydra would."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganrun.atomic_io import remove_stale_temps
from ganrun.errors import GanrunError

# the folders a run writes with atomic_write, where a killed run may have left temp files
WRITTEN_FOLDERS = (".", "checkpoints", "samples")


def prepare_run_dir(run_dir: Path, continuing: bool, create: bool = True) -> list[Path]:
    """A new run must not land on an old one; only a resume may reuse a run folder.

    create=False only checks (DDP ranks > 0: they fail with rank 0 but write nothing).
    Returns the temp files of killed earlier runs it removed (`.last.pt.tmp<pid>`, ...):
    this process writes nothing there yet, so its own pid's temps are stale too."""
    # a checkpoints/ folder with no checkpoint in it (a run that failed before its first
    # save) holds nothing to overwrite or resume
    has_ckpt = any((run_dir / "checkpoints").glob("*.pt"))
    taken = (["checkpoints"] if has_ckpt else []) + (
        ["metrics.jsonl"] if (run_dir / "metrics.jsonl").exists() else []
    )
    if taken and not continuing:
        fix = f", or continue that run with resume={run_dir}" if has_ckpt else ""
        raise GanrunError(
            f"hydra.run.dir={run_dir} already holds a run ({', '.join(taken)}); refusing to "
            f"overwrite it. Pick a new hydra.run.dir{fix}."
        )
    if not create:
        return []
    removed = [p for sub in WRITTEN_FOLDERS for p in remove_stale_temps(run_dir / sub, own=True)]
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    return removed


def write_config(
    run_dir: Path,
    cfg: DictConfig,
    overrides: list[str],
    hydra_cfg: DictConfig | None,
    continuing: bool,
) -> None:
    """.hydra/ as Hydra would write it; a resumed run appends its overrides to the original ones."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    previous = hydra_dir / "overrides.yaml"
    if continuing and previous.is_file():
        overrides = list(OmegaConf.load(previous)) + list(overrides)
    previous.write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    if hydra_cfg is not None:
        (hydra_dir / "hydra.yaml").write_text(
            OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg}))
        )

"""The W&B backend (`logger=wandb`): one W&B run per run folder, continued on resume.

wandb is imported when a backend is made, never when ganrun is imported, so `logger=none`
runs (and the tests that use it) do not pay for it. The run id, its labels, the last step sent
and the best metrics live in `<run folder>/wandb_run.json`: a resumed run continues the same
W&B run with its steps going on from there, and never sends a step W&B already has (W&B keeps
the first value of a step and drops lower ones, so a run rewound to an older checkpoint would
otherwise log silently into nothing, or twice after `wandb sync`).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ganrun.atomic_io import atomic_write
from ganrun.errors import GanrunError
from ganrun.tracking.tracker import RunLabels, log

STATE_FILE = "wandb_run.json"
MODES = ("online", "offline", "disabled")
BETTER = {"min": operator.lt, "max": operator.gt}  # logger.best.<direction>: new beats old


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise GanrunError(
            "logger=wandb needs the wandb package, which is not installed. Install it with "
            "`pip install wandb`, or train with logger=none."
        ) from None
    return wandb


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise GanrunError(
            f"logger.mode={mode} is not a W&B mode. Use logger.mode=offline (no account or "
            f"network; `wandb sync` uploads later), online or disabled."
        )


def _directions(best: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """{min: [eval/fid], max: [eval/modes]} -> {eval/fid: min, eval/modes: max}."""
    directions: dict[str, str] = {}
    for direction in BETTER:
        for metric in best.get(direction) or ():
            if directions.get(metric, direction) != direction:
                raise GanrunError(
                    f"logger.best: {metric} is in both logger.best.min and logger.best.max; "
                    f"keep it in the one that says which of its values is best."
                )
            directions[metric] = direction
    return directions


def _warn_if_rewound(saved: Mapping[str, Any], start_step: int) -> None:
    if start_step < (saved["step"] or 0):
        log.warning(
            "W&B run %s already has steps up to %d; this run restarts at step %d and sends "
            "only steps after %d (W&B history cannot be rewound)",
            saved["id"],
            saved["step"],
            start_step,
            saved["step"],
        )


class WandbBackend:
    """Sends ganrun's metrics and sample grids to a W&B run; see conf/logger/wandb.yaml."""

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any],
        labels: RunLabels,
        start_step: int,
        continuing: bool,
        mode: str = "offline",
        project: str = "ganrun",
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
        notes: str | None = None,
        job_type: str = "train",
        dir: str | None = None,
        best: Mapping[str, Sequence[str]] | None = None,
        system_stats: bool = True,
    ) -> None:
        _check_mode(mode)
        self.directions = _directions(best or {})
        wandb = _import_wandb()
        self.run_dir = Path(run_dir)
        self.persist = mode != "disabled"  # disabled: nothing is written anywhere
        saved = self._saved() if continuing else None
        if saved is not None:
            _warn_if_rewound(saved, start_step)
        self.floor = saved["step"] if saved else None  # last step an earlier session sent
        self.sent = self.floor
        self.best: dict[str, list[float]] = dict(saved["best"]) if saved else {}
        root = Path(dir) if dir else self.run_dir
        root.mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(
                id=saved["id"] if saved else None,  # None: W&B picks a new id
                resume="allow",  # a known id: W&B continues the run it already has
                mode=mode,
                project=project,
                entity=entity,
                name=saved["name"] if saved else name or labels.name,
                group=saved["group"] if saved else group or labels.group,
                tags=list(tags),
                notes=notes,
                job_type=job_type,
                dir=str(root),
                config=config,
                settings=wandb.Settings(
                    console="off",  # ganrun writes train.log itself; keeps rich's bar intact
                    save_code=False,  # the code is the installed package; the config is logged
                    silent=True,
                    x_disable_stats=not system_stats,
                ),
            )
        except wandb.errors.Error as err:
            raise GanrunError(
                f"logger.mode={mode}: W&B could not start a run ({str(err).splitlines()[0]}). "
                f"Log in with `wandb login` (or set WANDB_API_KEY), or use logger.mode=offline "
                f"and `wandb sync` the run later."
            ) from None
        self._write_state()
        for metric, (value, step) in self.best.items():
            self._set_best(metric, value, step)
        if mode == "offline":
            where = self.run.settings.sync_dir
            log.info("W&B offline run %s; upload it later with: wandb sync %s", self.run.id, where)

    def _saved(self) -> dict[str, Any] | None:
        path = self.run_dir / STATE_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def _write_state(self, step: int | None = None) -> None:
        if not self.persist:
            return
        if step is not None:
            self.sent = step if self.sent is None else max(self.sent, step)
        state = {
            "id": self.run.id,
            "name": self.run.name,
            "group": self.run.group,
            "step": self.sent,
            "best": self.best,
        }
        atomic_write(self.run_dir / STATE_FILE, (json.dumps(state, indent=1) + "\n").encode())

    def _sendable(self, step: int) -> bool:
        """False for steps an earlier session of this run already sent (a rewound resume)."""
        return self.floor is None or step > self.floor

    def _set_best(self, metric: str, value: float, step: int) -> None:
        self.run.summary[f"best/{metric}"] = value
        self.run.summary[f"best/{metric}_step"] = step

    def _update_best(self, metrics: Mapping[str, float], step: int) -> None:
        for metric, direction in self.directions.items():
            value = metrics.get(metric)
            if value is None or not math.isfinite(float(value)):
                continue
            value = float(value)
            old = self.best.get(metric)
            if old is None or BETTER[direction](value, old[0]):
                self.best[metric] = [value, step]
                self._set_best(metric, value, step)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if not self._sendable(step):
            return
        self.run.log(dict(metrics), step=step)
        self._update_best(metrics, step)
        self._write_state(step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        if not self._sendable(step):
            return
        import wandb

        self.run.log({name: wandb.Image(str(path))}, step=step)
        self._write_state(step)

    def log_video(self, name: str, path: Path, step: int) -> None:
        if not self._sendable(step):
            return
        import wandb

        self.run.log({name: wandb.Video(str(path), format=path.suffix.lstrip("."))}, step=step)
        self._write_state(step)

    def close(self, exit_code: int = 0) -> None:
        """Finish the W&B run (exit_code != 0 marks it failed); safe to call twice.

        finish() returns before wandb's service has written the run's `.wandb` file (0.31
        flushes it when the service lets go of the run); tearing the service down when no
        other run is active waits for that, so the run folder is complete when train()
        returns, not only when the process exits.
        """
        run, self.run = self.run, None
        if run is None:
            return
        run.finish(exit_code=exit_code)
        import wandb

        if wandb.run is None:
            wandb.teardown()

"""The TensorBoard backend (`logger=tensorboard`): event files in `<run folder>/tensorboard/`.

The logger StyleGAN2-ADA and mimicry users know: `tensorboard --logdir outputs/` shows every
run's scalars (the same metrics as metrics.jsonl, under the same names and steps), its
fixed-noise sample grids (the `samples` image, one per sample step) and its resolved config
(the `config` text entry, YAML). tensorboard is imported when a backend is made, never when
ganrun is imported.

A resume in the same run folder appends to the same event folder and purges what an earlier
session logged after the resume step (SummaryWriter's purge_step), so a run rewound to an older
checkpoint reads back with every step once, as metrics.jsonl does.

Videos (`log_video`): TensorBoard shows video only as animated GIF summaries made through
moviepy, which ganrun does not depend on; the mp4's path is logged as a text entry instead
(`<name>` text at that step), so the event file says where the video is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from ganrun.errors import GanrunError
from ganrun.tracking.tracker import RunLabels, log

CONFIG_TAG = "config"


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanrunError(
            "logger=tensorboard needs the tensorboard package, which is not installed. Install "
            "it with `pip install tensorboard`, or train with logger=none."
        ) from None
    return SummaryWriter


def markdown_code(text: str) -> str:
    """`text` as a Markdown code block (4-space indent): TensorBoard's text tab renders
    Markdown, which would otherwise fold the YAML's lines and newlines into one paragraph."""
    return "\n".join("    " + line for line in text.splitlines())


def event_dir(run_dir: Path, dir: str | None) -> Path:
    """The event folder: <run folder>/tensorboard by default; a relative `dir` is under the
    run folder, an absolute one is used as it is."""
    return run_dir / (dir or "tensorboard")


class TensorBoardBackend:
    """Writes ganrun's metrics, sample grids and config as TensorBoard events; see
    conf/logger/tensorboard.yaml."""

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any],
        labels: RunLabels,
        start_step: int,
        continuing: bool,
        dir: str | None = None,
        flush_secs: float = 30,
        log_config: bool = True,
    ) -> None:
        if flush_secs <= 0:
            raise GanrunError(
                f"logger.flush_secs={flush_secs} must be > 0 (seconds between writes of the "
                f"event file); the default 30 lets a running TensorBoard follow the run."
            )
        SummaryWriter = _summary_writer()
        self.log_dir = event_dir(Path(run_dir), dir)
        # continuing: drop what an earlier session logged after this session's first step
        purge = start_step + 1 if continuing else None
        self.writer = SummaryWriter(
            log_dir=str(self.log_dir), purge_step=purge, flush_secs=flush_secs
        )
        if log_config:
            text = OmegaConf.to_yaml(OmegaConf.create(config), resolve=True)
            self.writer.add_text(CONFIG_TAG, markdown_code(text), start_step)
        log.info("TensorBoard events in %s (run %s)", self.log_dir, labels.name)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, float(value), step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        from PIL import Image

        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        self.writer.add_image(name, pixels, step, dataformats="HWC")

    def log_video(self, name: str, path: Path, step: int) -> None:
        """The video's path as text (TensorBoard plays no mp4; see the module docstring)."""
        self.writer.add_text(name, f"video: `{Path(path)}`", step)

    def close(self, exit_code: int = 0) -> None:
        """Flush and close the event file; safe to call twice. A failed run (exit_code != 0)
        leaves a `run/exit_code` text entry saying so."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        if exit_code:
            writer.add_text("run/exit_code", f"the run ended with exit code {exit_code}")
        writer.close()

"""What a training run draws for people besides its sample grids: plots and a time-lapse.

    trainer.plots: true      <run>/plots/*.png, refreshed on every sample-grid step
    trainer.timelapse: true  <run>/videos/timelapse.{mp4,gif} at the end of the run (two or
                             more sample grids)

Both read only files the run has already written (metrics.jsonl, samples/*.png), on rank 0,
outside the training step: they draw no random numbers and touch no tensor, so a run's
numbers are the same with them on or off. A backend (logger=wandb) gets the same plots and
video. A failure to draw (a broken matplotlib, a full disk) is logged and the run goes on:
a picture is never worth a lost run.
"""

from __future__ import annotations

from pathlib import Path

from ganrun.tracking.tracker import Backend, log

MIN_FRAMES = 2  # sample grids a time-lapse needs


class RunVisuals:
    """Called by the loop after each sample grid, and by train() once the run has ended."""

    def __init__(
        self, run_dir: Path, plots: bool, timelapse: bool, backend: Backend | None = None
    ) -> None:
        self.run_dir = run_dir
        self.plots, self.timelapse = plots, timelapse
        self.backend = backend
        self.plot_paths: list[Path] = []
        self.plotted: int | None = None  # the step the plots on disk were drawn at

    @property
    def enabled(self) -> bool:
        return self.plots or self.timelapse

    def on_sample(self, step: int) -> None:
        """Redraw the plots from metrics.jsonl so far (a few hundred ms per figure)."""
        if not self.plots:
            return
        from ganrun.tracking.plots import write_run_plots

        try:
            self.plot_paths = write_run_plots(self.run_dir)
            self.plotted = step
        except Exception as err:  # noqa: BLE001 - never end a run over a figure
            log.warning("plots at step %d not written: %s", step, err)

    def finish(self, step: int) -> list[Path]:
        """The final plots and the time-lapse, sent to the backend too; returns the files."""
        written: list[Path] = []
        if self.plots:
            if self.plotted != step:  # the final sample grid usually drew them already
                self.on_sample(step)
            written += self.plot_paths
            if self.backend is not None:
                for path in self.plot_paths:
                    self.backend.log_image(f"plots/{path.stem}", path, step)
        if self.timelapse:
            from ganrun.sampling.timelapse import step_grids, write_timelapse

            grids = len(step_grids(self.run_dir))
            if 0 < grids < MIN_FRAMES:  # one frame shows no change; encoding it costs ~1 s
                log.info(
                    "time-lapse not written: the run drew %d sample grid(s) and a time-lapse "
                    "needs %d (trainer.sample_every=N draws one every N steps)",
                    grids,
                    MIN_FRAMES,
                )
            if grids >= MIN_FRAMES:
                try:
                    videos = write_timelapse(self.run_dir, self.run_dir / "videos")
                except Exception as err:  # noqa: BLE001 - never end a run over a video
                    log.warning("time-lapse not written: %s", err)
                    videos = []
                written += videos
                if self.backend is not None and videos:  # the mp4; the gif holds the same frames
                    self.backend.log_video("videos/timelapse", videos[0], step)
        return written

"""Stopping on a signal without losing work: SIGTERM (SLURM, Kubernetes), SIGINT (Ctrl-C) and
SIGUSR1 (SLURM's `--signal`, submitit's preemption warning).

The first signal asks the loop to stop at the end of the current step; the loop then writes
last.pt and raises RunInterrupted. A second signal exits at once (checkpoints are written
atomically, so even then none is half-written). A handler that was installed before (submitit's
checkpoint-and-requeue) is called after last.pt is saved, so a SLURM job still requeues.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from ganrun.errors import RunInterrupted

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
if hasattr(signal, "SIGUSR1"):
    EXIT_CODES[signal.SIGUSR1] = 143


class StopSignals:
    """Within the block, the signals above only set `requested` (the first) or exit (the
    second). Outside the main thread (nothing can be installed there) it is inert."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second signal: now, without the checkpoint
            raise RunInterrupted(
                f"{signal.Signals(signum).name} again during the stop after "
                f"{signal.Signals(self.received).name}: exited at once (checkpoints are written "
                f"atomically; last.pt is the last one completed).",
                EXIT_CODES[signum],
            )
        self.received = signum

    def interrupted(self, step: int, checkpoint: str) -> RunInterrupted:
        """The exception that ends the run once last.pt is saved."""
        name = signal.Signals(self.received).name
        return RunInterrupted(
            f"{name} received: stopped at step {step} and saved {checkpoint}. Continue with "
            f"`ganrun train resume=<this run folder>`.",
            EXIT_CODES[self.received],
        )

    def requested_anywhere(self) -> bool:
        """Whether any process got a signal (DDP: one all-reduce, so all ranks stop at the
        same step); a single process just reads its flag."""
        from ganrun.training.distributed import any_rank

        return any_rank(self.requested)

    def chain(self) -> None:
        """Call the handler that was installed before ours for the received signal, if it is a
        Python function (submitit's checkpoint-and-requeue); default handlers are skipped."""
        handler = self.previous.get(self.received)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(self.received, None)

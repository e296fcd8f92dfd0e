"""One run per folder: a second run into a folder in use is refused with the owner's pid;
the lock of a killed run is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from test_cli import launch
from test_signals import LONG, lines

from ganrun.errors import GanrunError
from ganrun.training.run_lock import RunLock


def test_second_run_into_a_busy_folder_is_refused(tmp_path):
    """Run 1 trains; run 2 with the same hydra.run.dir exits 2 naming run 1's pid and writes
    nothing; run 1's metrics.jsonl holds only its own steps, once each."""
    run_dir = tmp_path / "run"
    first = launch(tmp_path, "train", *LONG, f"hydra.run.dir={run_dir}")
    try:
        deadline = time.monotonic() + 60
        while len(lines(run_dir / "metrics.jsonl")) < 2:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = launch(tmp_path, "train", "debug=smoke", f"hydra.run.dir={run_dir}")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 2, out + err
        assert f"in use by another ganrun run (pid {first.pid})" in out + err
        assert "Traceback" not in out + err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    steps = [r["step"] for r in lines(run_dir / "metrics.jsonl")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2


def test_lock_in_one_process_twice_is_refused(tmp_path):
    with RunLock(tmp_path) as lock:
        lock.own()
        with pytest.raises(GanrunError, match=f"pid {os.getpid()}"), RunLock(tmp_path):
            pass
    with RunLock(tmp_path):  # released: free again
        pass


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
    """A process holding the lock is killed with SIGKILL: the next RunLock gets it at once."""
    code = (
        "import sys, time; from ganrun.training.run_lock import RunLock; "
        f"lock = RunLock(r'{tmp_path}').__enter__(); lock.own(); print('locked', flush=True); "
        "time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(GanrunError, match=f"pid {holder.pid}"), RunLock(tmp_path):
        pass
    holder.kill()
    holder.wait(timeout=30)
    with RunLock(tmp_path) as lock:
        assert lock.fd is not None

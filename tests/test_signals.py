"""Signals stop a run without losing work: SIGTERM / SIGINT / SIGUSR1 end it after the current
step with last.pt saved and job.json `interrupted`; a second signal exits at once; resuming
continues bit for bit; a handler installed before (submitit's requeue) is still called."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from test_cli import launch
from test_train import assert_bit_equal, load, resume, run

from ganrun.errors import RunInterrupted
from ganrun.training.resume import requeued_resume
from ganrun.training.signals import StopSignals

# one thread in every run compared bit for bit (the subprocess and the in-process reference)
ONE = ("trainer.ckpt_every=0", "trainer.sample_every=0", "trainer.threads=1")
LONG = ("debug=smoke", "trainer.max_steps=100000", *ONE)


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.is_file() else []


def interrupt(tmp_path: Path, name: str, signum: int, after_steps: int = 3):
    """A long smoke run in a subprocess, sent `signum` once it has logged `after_steps` steps;
    returns (exit code, output, run folder)."""
    run_dir = tmp_path / name
    proc = launch(tmp_path, "train", *LONG, f"hydra.run.dir={run_dir}")
    deadline = time.monotonic() + 60
    while len(lines(run_dir / "metrics.jsonl")) < after_steps:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err, run_dir


@pytest.mark.parametrize(
    "signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 143)]
)
def test_signal_saves_last_pt_and_resumes_bit_exact(tmp_path, signum, code):
    """The run exits with 143 (130 for SIGINT), no traceback; last.pt holds the step the last
    metrics line logged; job.json says interrupted. Resuming it to step k + 2 gives the
    last.pt of an uninterrupted run of k + 2 steps, bit for bit."""
    rc, out, run_dir = interrupt(tmp_path, "a", signum)
    assert rc == code, out
    assert "Traceback" not in out and f"{signal.Signals(signum).name} received" in out
    ckpt = load(run_dir / "checkpoints" / "last.pt")
    k = lines(run_dir / "metrics.jsonl")[-1]["step"]
    assert ckpt["step"] == k >= 3
    job = json.loads((run_dir / "job.json").read_text())
    assert job["status"] == "interrupted" and "resume=" in job["error"]
    if signum != signal.SIGTERM:
        return  # one resume check is enough for the three signals
    resume(run_dir, run_dir / "checkpoints" / "last.pt", f"trainer.max_steps={k + 2}")
    run(tmp_path / "b", *ONE, f"trainer.max_steps={k + 2}")
    resumed, straight = (
        load(run_dir / "checkpoints" / "last.pt"),
        load(tmp_path / "b" / "checkpoints" / "last.pt"),
    )
    assert resumed["step"] == straight["step"] == k + 2
    assert_bit_equal(resumed["players"], straight["players"], "players")
    assert_bit_equal(resumed["rng"], straight["rng"], "rng")
    assert [r["step"] for r in lines(run_dir / "metrics.jsonl")] == list(range(1, k + 3))


def test_first_signal_asks_second_exits_at_once():
    """Inside StopSignals the first SIGTERM only sets the flag; a second signal raises
    RunInterrupted with its own exit code; outside, the old handlers are back."""
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested and stop.received == signal.SIGTERM
        with pytest.raises(RunInterrupted) as err:
            signal.raise_signal(signal.SIGINT)
        assert err.value.exit_code == 130 and "exited at once" in str(err.value)
    assert signal.getsignal(signal.SIGTERM) is before
    exc = stop.interrupted(7, "checkpoints/last.pt")
    assert exc.exit_code == 143 and "step 7" in str(exc)


def test_previous_python_handler_is_chained():
    """A handler installed before (submitit's checkpoint-and-requeue on SIGUSR1) is called by
    chain() once the checkpoint is saved; default handlers are not."""
    calls = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: calls.append(s))
    try:
        with StopSignals() as stop:
            signal.raise_signal(signal.SIGUSR1)
            assert calls == []  # our handler took the signal
        stop.chain()
        assert calls == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, old)
    with StopSignals() as stop:
        signal.raise_signal(signal.SIGINT)
    stop.chain()  # Python's default SIGINT handler would raise KeyboardInterrupt: skipped


def test_requeued_job_resumes_its_own_run(tmp_path):
    """SLURM_RESTART_COUNT > 0 and a last.pt in the job folder: resume it; otherwise nothing."""
    (tmp_path / "checkpoints").mkdir()
    assert requeued_resume(tmp_path, {"SLURM_RESTART_COUNT": "1"}) is None
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
    assert requeued_resume(tmp_path, {"SLURM_RESTART_COUNT": "1"}) == str(tmp_path)
    assert requeued_resume(tmp_path, {"SLURM_RESTART_COUNT": "0"}) is None
    assert requeued_resume(tmp_path, {}) is None


def test_resume_accepts_overrides_that_repeat_the_saved_values(tmp_path):
    """A requeued sweep job passes its own overrides again (loss=hinge): they change nothing,
    so the resume goes on; a different value is still refused."""
    run(tmp_path / "a", "loss=hinge")
    ckpt = tmp_path / "a" / "checkpoints" / "step_0000002.pt"
    resume(tmp_path / "a", ckpt, "loss=hinge")
    assert load(tmp_path / "a" / "checkpoints" / "last.pt")["step"] == 4
    from ganrun.errors import GanrunError

    with pytest.raises(GanrunError, match="would change the run being resumed"):
        resume(tmp_path / "a", ckpt, "loss=ns")

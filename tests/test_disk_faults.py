"""Runs that survive the disk: a full disk, kill -9 mid-write, stale temp files, keep_last."""

from __future__ import annotations

import errno
import io
import os
import random
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg
from omegaconf import OmegaConf
from test_train import quiet

from ganrun import atomic_io
from ganrun.atomic_io import atomic_write, remove_stale_temps, temp_path
from ganrun.build import check_trainer
from ganrun.errors import GanrunError
from ganrun.training.checkpoint import (
    FORMAT,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from ganrun.training.run_folder import prepare_run_dir
from ganrun.training.train import train

Usage = namedtuple("Usage", "total used free")
FREE = 123_456  # what the faked shutil.disk_usage reports


def temps(folder: Path) -> list[Path]:
    """Every temp-looking file in folder: what a crash or a failed write could leave."""
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name)


def payload(step: int, numel: int = 1000) -> dict:
    """A small checkpoint-shaped dict that load_checkpoint accepts."""
    return {"format": FORMAT, "step": step, "players": {"w": torch.full((numel,), float(step))}}


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ------------------------------------------------------------------------ a full disk


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where):
    """ENOSPC mid-write: a GanrunError with the path and the sizes, no temp file, and the
    previous last.pt byte-identical and loadable."""
    last = tmp_path / "last.pt"
    save_checkpoint(payload(1), [last])
    before = last.read_bytes()
    monkeypatch.setattr(atomic_io.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, FREE))
    if where == "fsync":
        monkeypatch.setattr(atomic_io.os, "fsync", no_space)
    else:  # half the bytes reach the temp file, then the disk is full

        def half_then_full(tmp: Path, data: bytes) -> None:
            tmp.write_bytes(data[: len(data) // 2])
            no_space()

        monkeypatch.setattr(atomic_io, "_write_synced", half_then_full)
    big = payload(2, numel=50_000)
    with pytest.raises(GanrunError) as err:
        save_checkpoint(big, [last])
    message = str(err.value)
    monkeypatch.undo()
    needed = len(temp_bytes(big))
    assert str(last) in message
    assert f"needs {needed} bytes" in message
    assert f"{FREE} bytes" in message and "free" in message
    assert "hydra.run.dir" in message and "\n" not in message
    assert "The previous last.pt is unchanged" in message
    assert isinstance(err.value.__cause__, OSError) and err.value.__cause__.errno == errno.ENOSPC
    assert temps(tmp_path) == []
    assert last.read_bytes() == before
    assert load_checkpoint(last)["step"] == 1


def temp_bytes(p: dict) -> bytes:
    """What save_checkpoint writes for p."""
    buf = io.BytesIO()
    torch.save(p, buf)
    return buf.getvalue()


def test_quota_exceeded_is_a_full_disk_too(tmp_path, monkeypatch):
    """EDQUOT (a user quota) gets the same message as ENOSPC."""
    if not hasattr(errno, "EDQUOT"):
        pytest.skip("no EDQUOT on this OS")

    def quota(*args):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(atomic_io.os, "fsync", quota)
    with pytest.raises(GanrunError, match="No space left"):
        atomic_write(tmp_path / "x.bin", b"12345")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "error", [OSError(errno.EIO, "I/O error"), PermissionError(errno.EACCES, "denied")]
)
def test_other_os_errors_propagate_unchanged(tmp_path, monkeypatch, error):
    """Only a full disk becomes a GanrunError; other OSErrors keep their type, and clean up."""
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def fail(*args):
        raise error

    monkeypatch.setattr(atomic_io.os, "fsync", fail)
    with pytest.raises(OSError) as err:
        atomic_write(target, b"new bytes")
    monkeypatch.undo()
    assert err.value is error and not isinstance(err.value, GanrunError)
    assert target.read_bytes() == b"old"
    assert temps(tmp_path) == []


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_interrupted_write_removes_its_temp(tmp_path, monkeypatch, exc):
    """Ctrl-C (or sys.exit) mid-write: re-raised as is, the temp file gone, the old file kept."""
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def interrupted(tmp: Path, data: bytes) -> None:
        tmp.write_bytes(data[:3])
        raise exc

    monkeypatch.setattr(atomic_io, "_write_synced", interrupted)
    with pytest.raises(exc):
        atomic_write(target, b"new bytes")
    monkeypatch.undo()
    assert temps(tmp_path) == []
    assert target.read_bytes() == b"old"
    atomic_write(target, b"new bytes")  # and a write that succeeds still works
    assert target.read_bytes() == b"new bytes"


def test_atomic_write_fsyncs_the_folder(tmp_path, monkeypatch):
    """After the rename the folder itself is fsynced (the file's fd, then the folder's)."""
    synced: list[bool] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if sys.platform == "linux" else True)
        real(fd)

    monkeypatch.setattr(atomic_io.os, "fsync", spy)
    atomic_write(tmp_path / "x.bin", b"data")
    monkeypatch.undo()
    assert len(synced) == 2
    if sys.platform == "linux":
        assert synced == [False, True]


def test_full_disk_during_training(tmp_path, monkeypatch):
    """The disk fills at the step-4 checkpoint of a real run: the run stops with the clear
    GanrunError, no temp is left, and the step-2 checkpoints load."""
    real = atomic_io._write_synced

    def fills_at_step_4(tmp: Path, data: bytes) -> None:
        if "step_0000004" in tmp.name:
            tmp.write_bytes(data[: len(data) // 3])
            no_space()
        real(tmp, data)

    monkeypatch.setattr(atomic_io, "_write_synced", fills_at_step_4)
    run_dir = tmp_path / "run"
    with pytest.raises(GanrunError) as err:
        train(compose_cfg(), run_dir, overrides=["debug=smoke"], console=quiet())
    monkeypatch.undo()
    message = str(err.value)
    folder = run_dir / "checkpoints"
    assert str(folder / "step_0000004.pt") in message and "bytes" in message
    assert "No space left" in message and "The previous" not in message  # a new file
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "step_0000002.pt"]
    assert load_checkpoint(folder / "last.pt")["step"] == 2
    assert (folder / "last.pt").read_bytes() == (folder / "step_0000002.pt").read_bytes()
    assert [p for sub in (run_dir, run_dir / "samples") for p in temps(sub)] == []


# ------------------------------------------------------------------------- kill -9

# A writer that saves ~4 MB checkpoints to last.pt without pause. To keep 20 restarts fast it
# imports torch once and forks a fresh writer per request: each writer is a separate process
# that the test kills with SIGKILL; this parent reaps it and says so.
WRITER = r"""
import os, sys
from pathlib import Path
import torch
from ganrun.training.checkpoint import FORMAT, save_checkpoint
last = Path(sys.argv[1]) / "last.pt"
print("ready", flush=True)
for line in sys.stdin:
    step = int(line)
    pid = os.fork()
    if pid == 0:
        while True:
            step += 1
            w = torch.full((1 << 20,), float(step))
            save_checkpoint({"format": FORMAT, "step": step, "players": {"w": w}}, [last])
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")
def test_kill_9_mid_write_never_breaks_last_pt(tmp_path):
    """20 writers killed at random moments: last.pt always loads whole, at a step that never
    goes back; the temps the kills leave are removed by remove_stale_temps."""
    save_checkpoint(payload(0, numel=1 << 20), [tmp_path / "last.pt"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    rng = random.Random(13)
    step, left_temps, writer = 0, 0, None
    try:
        assert parent.stdout.readline().strip() == "ready"
        for _ in range(20):
            parent.stdin.write(f"{step}\n")
            parent.stdin.flush()
            writer = int(parent.stdout.readline())
            time.sleep(rng.uniform(0.05, 0.25))
            os.kill(writer, signal.SIGKILL)
            assert parent.stdout.readline().strip() == "reaped"
            ckpt = load_checkpoint(tmp_path / "last.pt")
            assert ckpt["step"] >= step
            step = ckpt["step"]
            torch.testing.assert_close(
                ckpt["players"]["w"], torch.full((1 << 20,), float(step)), rtol=0, atol=0
            )
            stale = temps(tmp_path)
            assert stale in ([], [temp_path(tmp_path / "last.pt", writer)])
            left_temps += bool(stale)
            assert remove_stale_temps(tmp_path) == stale
            assert temps(tmp_path) == []
            assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    finally:
        if writer is not None:
            try:
                os.kill(writer, signal.SIGKILL)
            except ProcessLookupError:
                pass
        parent.stdin.close()
        parent.wait(timeout=30)
    assert step > 0  # the writers made progress
    assert left_temps > 0  # and some kills did land mid-write


# ------------------------------------------------------------------ stale temp files


def test_remove_stale_temps_dead_live_and_own_pids(tmp_path):
    """A dead writer's temp goes; a live process's (the parent's) and, by default, this
    process's own stay; own=True removes this process's too; other files are never touched."""
    dead, live, me = dead_pid(), os.getppid(), os.getpid()
    gone = tmp_path / f".last.pt.tmp{dead}"
    kept = [
        tmp_path / f".last.pt.tmp{live}",
        tmp_path / f".step_0000002.pt.tmp{me}",
        tmp_path / "last.pt",
        tmp_path / f"last.pt.tmp{dead}",  # no leading dot: not a temp of atomic_write
        tmp_path / ".last.pt.tmpabc",
        tmp_path / ".hidden",
    ]
    for p in [gone, *kept]:
        p.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f".x.tmp{dead}").write_bytes(b"x")  # not recursive
    assert remove_stale_temps(tmp_path) == [gone]
    assert not gone.exists()
    assert all(p.exists() for p in kept)
    assert (tmp_path / "sub" / f".x.tmp{dead}").exists()
    assert remove_stale_temps(tmp_path, own=True) == [tmp_path / f".step_0000002.pt.tmp{me}"]
    assert (tmp_path / f".last.pt.tmp{live}").exists()
    assert remove_stale_temps(tmp_path / "missing") == []


def test_remove_stale_temps_keeps_a_running_childs_temp(tmp_path):
    """A writer that is still running (a child sleeping) keeps its temp; once it is reaped the
    temp is stale."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        temp = tmp_path / f".last.pt.tmp{child.pid}"
        temp.write_bytes(b"x")
        assert remove_stale_temps(tmp_path) == []
        assert temp.exists()
    finally:
        child.kill()
        child.wait()
    assert remove_stale_temps(tmp_path) == [temp]
    assert not temp.exists()


def test_prepare_run_dir_clears_killed_runs_temps(tmp_path):
    """Starting (or resuming) in a folder clears the temps a killed run left in the run folder,
    checkpoints/ and samples/; a check-only call (DDP ranks > 0) removes nothing."""
    dead = dead_pid()
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "samples").mkdir()
    stale = [
        run_dir / f".job.json.tmp{dead}",
        run_dir / "checkpoints" / f".last.pt.tmp{dead}",
        run_dir / "samples" / f".0000002.png.tmp{dead}",
    ]
    for p in stale:
        p.write_bytes(b"x")
    assert prepare_run_dir(run_dir, continuing=False, create=False) == []
    assert all(p.exists() for p in stale)
    assert sorted(prepare_run_dir(run_dir, continuing=False)) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert (run_dir / "checkpoints").is_dir() and (run_dir / "samples").is_dir()


# ------------------------------------------------------------------------ keep_last


def step_files(folder: Path, steps: list[int]) -> None:
    for s in steps:
        (folder / f"step_{s:07d}.pt").write_bytes(b"x")


def test_prune_checkpoints_keeps_the_newest(tmp_path):
    """keep_last=2 of steps 2..10 leaves 8 and 10 with last.pt and best.pt; 0 keeps all."""
    step_files(tmp_path, [2, 4, 6, 8, 10])
    for name in ("last.pt", "best.pt", f".step_0000012.pt.tmp{os.getpid()}"):
        (tmp_path / name).write_bytes(b"x")
    everything = sorted(p.name for p in tmp_path.iterdir())
    assert prune_checkpoints(tmp_path, 0) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == everything
    removed = prune_checkpoints(tmp_path, 2)
    assert [p.name for p in removed] == ["step_0000002.pt", "step_0000004.pt", "step_0000006.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".step_0000012.pt.tmp{os.getpid()}",
        "best.pt",
        "last.pt",
        "step_0000008.pt",
        "step_0000010.pt",
    ]
    assert prune_checkpoints(tmp_path, 2) == []  # already pruned
    assert prune_checkpoints(tmp_path, 5) == []  # fewer than N: nothing to do


def test_prune_checkpoints_orders_by_step_not_name(tmp_path):
    """step_10000000.pt (8 digits) is newer than step_9999999.pt though it sorts first."""
    for name in ("step_9999998.pt", "step_9999999.pt", "step_10000000.pt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in prune_checkpoints(tmp_path, 1)] == [
        "step_9999998.pt",
        "step_9999999.pt",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["step_10000000.pt"]
    with pytest.raises(ValueError, match="keep_last=-1"):
        prune_checkpoints(tmp_path, -1)


def test_keep_last_must_not_be_negative():
    """trainer.keep_last=-1 fails before any work, naming the key; 0 and 3 pass; a config
    without the key (an older checkpoint's) passes."""
    cpu = torch.device("cpu")
    with pytest.raises(GanrunError, match=r"trainer\.keep_last=-1 must be >= 0"):
        check_trainer(compose_cfg("trainer.keep_last=-1").trainer, cpu)
    for n in (0, 3):
        check_trainer(compose_cfg(f"trainer.keep_last={n}").trainer, cpu)
    old = OmegaConf.create(OmegaConf.to_container(compose_cfg().trainer))
    del old["keep_last"]
    check_trainer(old, cpu)

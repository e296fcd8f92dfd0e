"""The `ganrun` command in subprocesses: help, train -> sample -> resume, and clean errors.

Each call pays the import of torch (seconds), so the calls that do not depend on each
other run concurrently in one module fixture; the tests then check one result each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganrun.config import CONF


@dataclass
class Result:
    rc: int
    out: str  # stdout + stderr

    @property
    def text(self) -> str:
        """The output with whitespace runs collapsed (a console may wrap long lines)."""
        return " ".join(self.out.split())


def launch(
    cwd: Path, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.Popen:
    """`python -m ganrun *args` in `cwd`, output captured, one CPU thread unless OMP_NUM_THREADS
    is in `unset`; `env` adds variables (e.g. GANRUN_CACHE)."""
    full = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", *unset)}
    full.update(COLUMNS="400", PYTHONWARNINGS="ignore")
    if "OMP_NUM_THREADS" not in unset:
        full["OMP_NUM_THREADS"] = "1"
    env = {**full, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "ganrun", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def collect(procs: dict[str, subprocess.Popen]) -> dict[str, Result]:
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        results[name] = Result(p.returncode, out + err)
    return results


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Runs every CLI call of this module (concurrently where independent); returns results."""
    tmp = tmp_path_factory.mktemp("cli")
    run = tmp / "run"
    torch.save({"a": 1}, tmp / "other.pt")
    (tmp / "garbage.pt").write_bytes(b"this is not a checkpoint\n" * 10)
    (tmp / "empty").mkdir()

    # phase 1: independent calls
    r = collect(
        {
            "help": launch(tmp, "--help"),
            "train": launch(tmp, "train", "debug=smoke", f"hydra.run.dir={run}"),
            "bad_option": launch(tmp, "train", "model=nope"),
            "bad_key": launch(tmp, "train", "trainer.max_step=3"),
            "bad_type": launch(tmp, "train", "trainer.batch_size=big"),
            "no_ckpt": launch(tmp, "sample", f"ckpt={tmp / 'nope.pt'}"),
            "other_pt": launch(tmp, "sample", f"ckpt={tmp / 'other.pt'}"),
            "garbage": launch(tmp, "sample", f"ckpt={tmp / 'garbage.pt'}"),
            "no_mnist": launch(
                tmp,
                "train",
                "dataset=mnist",
                f"dataset.root={tmp / 'empty'}",
                "debug=smoke",
                f"hydra.run.dir={tmp / 'mnist_run'}",
            ),
        }
    )
    # phase 2: calls that need the trained run (the refusal must leave it byte for byte)
    r["run_files_before_refusal"] = file_bytes(run) if run.is_dir() else {}
    r.update(
        collect(
            {
                "sample": launch(
                    tmp,
                    "sample",
                    f"ckpt={run / 'checkpoints' / 'last.pt'}",
                    "n=8",
                    f"out={tmp / 's'}",
                ),
                "taken": launch(tmp, "train", "debug=smoke", f"hydra.run.dir={run}"),
            }
        )
    )
    r["run_files_after_refusal"] = file_bytes(run) if run.is_dir() else {}
    r["step4_metrics"] = (run / "metrics.jsonl").read_text() if run.is_dir() else ""
    r["step4_overrides"] = r["run_files_before_refusal"].get(".hydra/overrides.yaml", b"").decode()
    # phase 3: continue the run to step 6 in its own folder
    r.update(
        collect(
            {
                "resume": launch(
                    tmp, "train", f"resume={run / 'checkpoints' / 'last.pt'}", "trainer.max_steps=6"
                ),
            }
        )
    )
    r["tmp"] = tmp
    r["cwd_listing"] = sorted(p.name for p in tmp.iterdir())
    return r


def assert_clean_error(res: Result, *needles: str) -> None:
    """Exit code 2, no traceback, and the message names each needle."""
    assert res.rc == 2, res.out
    assert "Traceback" not in res.out
    assert "error:" in res.text
    for needle in needles:
        assert needle in res.text, (needle, res.out)


def test_help_lists_tasks_and_groups(cli):
    """`ganrun --help` exits 0 and lists both tasks and every config group with its options."""
    res = cli["help"]
    assert res.rc == 0, res.out
    lines = res.out.splitlines()
    for task in ("train", "sample", "runs"):
        assert any(line.split()[:1] == [task] for line in lines), task
    # hydra/ holds only folders (hydra/launcher): those are listed by their own path
    groups = sorted(p for p in CONF.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    assert len(groups) >= 6
    assert {"method", "schedule"} <= {g.name for g in groups}  # methods and schedules (issue 10)
    for group in groups:
        options = sorted(f.stem for f in group.glob("*.yaml"))
        line = next(ln for ln in lines if ln.split()[:1] == [group.name])
        assert line.split(None, 1)[1].strip() == ", ".join(options), group.name
    for option in ("dcgan", "mlp", "wgan_gp", "ring8", "mnist", "smoke"):
        assert option in res.out


def test_train_writes_run_folder(cli):
    """`ganrun train debug=smoke hydra.run.dir=...` exits 0 and writes the full run folder."""
    res, run = cli["train"], cli["tmp"] / "run"
    assert res.rc == 0, res.out
    assert "Traceback" not in res.out
    assert (run / ".hydra" / "config.yaml").is_file()
    assert cli["step4_overrides"].strip() == "- debug=smoke"
    assert (run / "train.log").stat().st_size > 0
    assert [json.loads(ln)["step"] for ln in cli["step4_metrics"].splitlines()] == [1, 2, 3, 4]
    for name in (
        "reals.png",
        "samples/0000002.png",
        "samples/0000004.png",
        "checkpoints/step_0000002.pt",
        "checkpoints/step_0000004.pt",
    ):
        assert (run / name).is_file(), name
    assert not (cli["tmp"] / "outputs").exists()  # hydra.run.dir was honoured


def test_sample_from_cli_run(cli):
    """`ganrun sample ckpt=... n=8 out=...` exits 0 and writes grid.png and samples.npz."""
    res, out = cli["sample"], cli["tmp"] / "s"
    assert res.rc == 0, res.out
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "samples.npz"]
    with np.load(out / "samples.npz") as npz:
        assert npz["images"].dtype == np.uint8
        assert npz["images"].shape == (8, 16, 16, 1)
    with Image.open(out / "grid.png") as img:
        assert img.size == (3 * 18 + 2, 3 * 18 + 2)


def test_resume_continues_in_the_checkpoints_run_folder(cli):
    """`ganrun train resume=<last.pt> trainer.max_steps=6` trains to step 6 in that run's folder."""
    res, run = cli["resume"], cli["tmp"] / "run"
    assert res.rc == 0, res.out
    last = load(run / "checkpoints" / "last.pt")
    assert last["step"] == 6
    assert last["config"]["trainer"]["max_steps"] == 6
    assert load(run / "checkpoints" / "step_0000006.pt")["step"] == 6
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert not (cli["tmp"] / "outputs").exists()  # no new run folder was made


def test_unknown_group_option(cli):
    """model=nope: exit 2, names the bad option and lists dcgan and mlp."""
    assert_clean_error(cli["bad_option"], "model/nope", "dcgan", "mlp")


def test_unknown_key(cli):
    """trainer.max_step=3: exit 2, names the key and suggests trainer.max_steps."""
    assert_clean_error(cli["bad_key"], "trainer.max_step", "trainer.max_steps")


def test_wrong_type(cli):
    """trainer.batch_size=big: exit 2, names the key, the value and the expected type."""
    assert_clean_error(cli["bad_type"], "trainer.batch_size", "big", "Integer")


def test_sample_missing_checkpoint(cli):
    """ckpt=<missing file>: exit 2, names the path and says to pass a `ganrun train` checkpoint."""
    assert_clean_error(cli["no_ckpt"], f"ckpt={cli['tmp'] / 'nope.pt'}", "ganrun train")


def test_sample_non_ganrun_pt(cli):
    """ckpt=<a torch file that is no ganrun checkpoint>: exit 2, says so."""
    assert_clean_error(cli["other_pt"], str(cli["tmp"] / "other.pt"), "not a ganrun checkpoint")


def test_sample_garbage_file(cli):
    """ckpt=<not a torch file at all>: exit 2, names the file and the fix."""
    assert_clean_error(
        cli["garbage"], str(cli["tmp"] / "garbage.pt"), "not a readable", "ganrun train"
    )


def test_missing_dataset_files(cli):
    """dataset=mnist with an empty root: exit 2, lists the expected MNIST/raw .gz files; no run folder left."""
    assert_clean_error(
        cli["no_mnist"],
        "dataset.root",
        "MNIST/raw",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    )
    assert not (cli["tmp"] / "mnist_run").exists()


def test_fresh_train_refuses_existing_run(cli):
    """hydra.run.dir=<existing run> for a fresh train: exit 2, suggests resume=, run files unchanged."""
    assert_clean_error(cli["taken"], "already holds a run", "resume=")
    before, after = cli["run_files_before_refusal"], cli["run_files_after_refusal"]
    assert "checkpoints/last.pt" in before
    assert len(before) >= 10
    assert after == before


def test_calls_leave_no_stray_files(cli):
    """The cwd holds only what the calls were told to write: no outputs/, no *.log, no failed run."""
    assert cli["cwd_listing"] == ["empty", "garbage.pt", "other.pt", "run", "s"]

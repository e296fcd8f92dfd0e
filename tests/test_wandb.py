"""logger=wandb in offline mode, read back from the run's own `.wandb` file.

No mocks: wandb really runs (offline: no account, no network) and the tests decode the
records it wrote with wandb's own protobuf schema. wandb 0.31 ships no Python reader for the
file (its internals moved to the Go core), so `records()` below walks the file's framing:
a 7-byte header (":W&B", magic, version), then 32 KiB blocks of chunks, each with a 7-byte
header (crc32, length, type) and chunks of one record split FIRST/MIDDLE/LAST when they
cross a block. Every train() here is a 4-step smoke run (about a second plus wandb's start).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import compose_cfg
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console

from ganrun.config import CONF, register
from ganrun.errors import GanrunError
from ganrun.losses.ns import NonSaturatingLoss
from ganrun.tracking.tracker import RunLabels
from ganrun.training.train import train

wandb_pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
OFFLINE = "logger.mode=offline"
NO_STATS = "logger.system_stats=false"  # no sampling thread in tests
WANDB = ("logger=wandb", OFFLINE, NO_STATS)


# --- reading a run back ---------------------------------------------------------------------


def records(path: Path) -> list:
    """Every Record in a `.wandb` file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, chunks, out = HEADER, b"", []
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zero fill after the last record
            break
        chunks += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_pb.Record()
            record.ParseFromString(chunks)
            out.append(record)
            chunks = b""
    return out


def _key(item) -> str:
    """loss/d for a top-level key, samples.path for a nested one."""
    return item.key or ".".join(item.nested_key)


@dataclass
class Session:
    """One wandb.init .. finish of a run, as its offline folder holds it."""

    folder: Path
    run: object = None
    history: dict[int, dict] = field(default_factory=dict)  # step -> {key: value}
    summary: dict[str, object] = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def config(self) -> dict:
        return {_key(u): json.loads(u.value_json) for u in self.run.config.update}


def read_session(folder: Path) -> Session:
    (path,) = folder.glob("run-*.wandb")
    s = Session(folder)
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            s.run = r.run
        elif kind == "history":
            row = s.history.setdefault(r.history.step.num, {})
            row.update({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            s.summary.update({_key(u): json.loads(u.value_json) for u in r.summary.update})
        elif kind == "exit":
            s.exit_code = r.exit.exit_code
    return s


def sessions(run_dir: Path) -> list[Session]:
    """The offline runs under <run folder>/wandb, oldest first (their names start with a time)."""
    return [read_session(f) for f in sorted((run_dir / "wandb").glob("offline-run-*"))]


def metrics(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows}


def logged(session: Session, key: str) -> dict[int, float]:
    return {step: row[key] for step, row in session.history.items() if key in row}


# --- running -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def wandb_env(tmp_path_factory):
    """wandb's own settings, cache and credentials in a temporary home: nothing leaks in or out."""
    home = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY"):
            mp.delenv(var, raising=False)
        mp.setenv("HOME", str(home))
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(home / var.lower()))
        yield


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def hydra_cfg(*overrides: str):
    """The `hydra` node a CLI run would pass to train(): it holds the group choices."""
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "train", overrides=["debug=smoke", *overrides], return_hydra_config=True
        ).hydra


def run(run_dir: Path, *given: str, with_hydra: bool = False) -> dict[str, float]:
    return train(
        compose_cfg(*given),
        run_dir,
        overrides=list(given),
        hydra_cfg=hydra_cfg(*given) if with_hydra else None,
        console=quiet(),
    )


def resume(run_dir: Path, ckpt: Path, *overrides: str) -> dict[str, float]:
    given = [f"resume={ckpt}", *overrides]
    return train(compose_cfg(*given), run_dir, overrides=given, console=quiet())


RING8 = (
    *WANDB,
    "experiment=ring8",
    "trainer.eval_every=2",
    "trainer.eval_samples=200",
    "logger.best.max=[eval/modes,eval/hq_pct]",
)


@pytest.fixture(scope="module")
def ring8_run(tmp_path_factory) -> Path:
    """ring8 smoke with W&B: 4 steps logged, sample grids at 2 and 4, eval/* at 2 and 4."""
    run_dir = tmp_path_factory.mktemp("ring8") / "run"
    run(run_dir, *RING8, with_hydra=True)
    return run_dir


# --- one offline run -----------------------------------------------------------------------


def test_offline_run_lives_in_the_run_folder(ring8_run):
    """One offline run under <run folder>/wandb, its id the one wandb_run.json keeps, exit 0."""
    (session,) = sessions(ring8_run)
    saved = json.loads((ring8_run / "wandb_run.json").read_text())
    assert session.run.run_id == saved["id"]
    assert session.folder.name.endswith(f"-{saved['id']}")
    assert saved["step"] == 4
    assert session.exit_code == 0


def test_losses_logged_at_the_training_steps(ring8_run):
    """loss/d, loss/g, d/* and perf/* at steps 1..4 with metrics.jsonl's exact values."""
    (session,) = sessions(ring8_run)
    expected = metrics(ring8_run)
    for key in ("loss/d", "loss/g", "d/real", "d/fake", "perf/img_per_s"):
        got = logged(session, key)
        assert sorted(got) == [1, 2, 3, 4], key
        assert got == {step: expected[step][key] for step in got}, key


def test_eval_metrics_logged_when_computed(ring8_run):
    """eval/modes, eval/hq_pct, eval/reverse_kl only at the eval steps (2, 4), as in metrics.jsonl."""
    (session,) = sessions(ring8_run)
    expected = metrics(ring8_run)
    for key in ("eval/modes", "eval/hq_pct", "eval/reverse_kl"):
        got = logged(session, key)
        assert sorted(got) == [2, 4], key
        assert got == {step: expected[step][key] for step in (2, 4)}, key


def test_sample_grids_logged_as_images(ring8_run):
    """At steps 2 and 4 the history holds an image whose bytes are the run's samples/<step>.png."""
    (session,) = sessions(ring8_run)
    steps = sorted(s for s, row in session.history.items() if "samples._type" in row)
    assert steps == [2, 4]
    for step in steps:
        row = session.history[step]
        assert row["samples._type"] == "image-file"
        png = (ring8_run / "samples" / f"{step:07d}.png").read_bytes()
        assert row["samples.sha256"] == hashlib.sha256(png).hexdigest()
        assert (session.folder / "files" / row["samples.path"]).read_bytes() == png


def test_resolved_config_logged(ring8_run):
    """The run's config is the resolved one train() ran (targets, trainer and logger keys)."""
    (session,) = sessions(ring8_run)
    config = session.config
    assert config["model"]["generator"]["_target_"] == "ganrun.models.mlp.MLPGenerator"
    assert config["dataset"]["_target_"] == "ganrun.data.toy.Ring"
    assert config["trainer"]["max_steps"] == 4
    assert config["trainer"]["eval_every"] == 2
    assert config["logger"]["mode"] == "offline"  # resolved, not ${oc.env:...}


def test_summary_keeps_the_best_eval_metrics(ring8_run):
    """best/eval/modes (max) and best/eval/hq_pct (max) with their steps; no eval/fid, no key."""
    (session,) = sessions(ring8_run)
    expected = metrics(ring8_run)
    for key in ("eval/modes", "eval/hq_pct"):
        values = {step: expected[step][key] for step in (2, 4)}
        best_step = max(values, key=lambda s: (values[s], -s))  # the first step reaching it
        assert session.summary[f"best/{key}"] == values[best_step]
        assert session.summary[f"best/{key}_step"] == best_step
    assert not any(k.startswith("best/eval/fid") for k in session.summary)


def test_name_and_group_come_from_the_choices(ring8_run):
    """experiment=ring8 picks model=mlp, loss=hinge, dataset=ring8: the name and the group."""
    (session,) = sessions(ring8_run)
    assert session.run.display_name == "mlp-hinge-ring8"
    assert session.run.run_group == "mlp-hinge-ring8"
    assert session.run.project == "ganrun"


# --- resume, failure, disabled -------------------------------------------------------------


def test_resume_continues_the_same_run(tmp_path):
    """2 steps, then resume to 4 in the same folder: the same W&B id, steps 3..4 after 1..2.
    Then a resume from step 2 again (a rewind) sends nothing W&B already has."""
    run_dir = tmp_path / "run"
    run(run_dir, *WANDB, "trainer.max_steps=2")
    resume(run_dir, run_dir, "trainer.max_steps=4")
    first, second = sessions(run_dir)
    assert second.run.run_id == first.run.run_id
    assert (second.run.display_name, second.run.run_group) == ("dcgan-nonsaturating-digits",) * 2
    assert sorted(logged(first, "loss/d")) == [1, 2]
    assert sorted(logged(second, "loss/d")) == [3, 4]
    expected = metrics(run_dir)
    assert logged(second, "loss/g") == {s: expected[s]["loss/g"] for s in (3, 4)}
    assert (first.exit_code, second.exit_code) == (0, 0)

    resume(run_dir, run_dir / "checkpoints" / "step_0000002.pt", "trainer.max_steps=4")
    *_, third = sessions(run_dir)
    assert third.run.run_id == first.run.run_id
    assert third.history == {}
    assert json.loads((run_dir / "wandb_run.json").read_text())["step"] == 4
    assert "W&B history cannot be rewound" in (run_dir / "train.log").read_text()


class FailsAtStep3(NonSaturatingLoss):
    """The non-saturating loss until D step index 2 (training step 3), then an error."""

    def d_loss(self, D, real, fake, d_step=0, *args):
        if d_step >= 2:
            raise RuntimeError("injected failure at step 3")
        return super().d_loss(D, real, fake, d_step, *args)


def test_failed_run_is_finished_with_a_nonzero_exit_code(tmp_path):
    """A loss that raises at step 3: train() re-raises, the W&B run holds steps 1..2, exit 1."""
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="injected failure"):
        run(run_dir, *WANDB, f"loss._target_={__name__}.FailsAtStep3")
    (session,) = sessions(run_dir)
    assert sorted(logged(session, "loss/d")) == [1, 2]
    assert session.exit_code == 1


def test_disabled_mode_writes_nothing(tmp_path):
    """logger.mode=disabled: the run folder holds exactly what a logger=none run writes."""
    run(tmp_path / "off", *WANDB, "logger.mode=disabled")
    run(tmp_path / "none", "logger=none")

    def files(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

    assert files(tmp_path / "off") == files(tmp_path / "none")
    assert not (tmp_path / "off" / "wandb").exists()


# --- the backend on its own ----------------------------------------------------------------


def backend(run_dir: Path, start_step: int = 0, continuing: bool = False, **keys):
    """A WandbBackend made from the shipped YAML, as build_backend makes it."""
    from ganrun.build import make

    node = compose_cfg("logger=wandb", OFFLINE, NO_STATS).logger
    factory = make(OmegaConf.merge(node, keys), "logger")
    labels = RunLabels("unit", "unit-group")
    return factory(
        run_dir=run_dir,
        config={"x": 1},
        labels=labels,
        start_step=start_step,
        continuing=continuing,
    )


def test_best_fid_is_the_minimum_and_survives_a_resume(tmp_path):
    """eval/fid 30, 20, nan, 25: best 20 at step 2; a continued session keeps it against 22."""
    b = backend(tmp_path)
    for step, fid in enumerate((30.0, 20.0, math.nan, 25.0), start=1):
        b.log({"eval/fid": fid}, step)
    b.close()
    b = backend(tmp_path, start_step=4, continuing=True)
    b.log({"eval/fid": 22.0}, 5)
    b.log({"eval/fid": 19.5}, 6)
    b.close()
    first, second = sessions(tmp_path)
    assert first.run.run_id == second.run.run_id
    assert (first.summary["best/eval/fid"], first.summary["best/eval/fid_step"]) == (20.0, 2)
    assert logged(second, "eval/fid") == {5: 22.0, 6: 19.5}
    assert (second.summary["best/eval/fid"], second.summary["best/eval/fid_step"]) == (19.5, 6)
    saved = json.loads((tmp_path / "wandb_run.json").read_text())
    assert saved["best"] == {"eval/fid": [19.5, 6]}


def test_best_restored_before_any_new_value(tmp_path):
    """A continued session that logs no eval/fid still carries the best from before."""
    b = backend(tmp_path)
    b.log({"eval/fid": 12.0}, 1)
    b.close()
    b = backend(tmp_path, start_step=1, continuing=True)
    b.log({"loss/d": 1.0}, 2)
    b.close()
    _, second = sessions(tmp_path)
    assert (second.summary["best/eval/fid"], second.summary["best/eval/fid_step"]) == (12.0, 1)


@pytest.mark.parametrize(
    "keys, match",
    [
        ({"mode": "sometimes"}, r"logger\.mode=sometimes.*logger\.mode=offline"),
        ({"best": {"max": ["eval/fid"]}}, r"eval/fid is in both logger\.best\.min and .*max"),
    ],
)
def test_bad_logger_values_are_clear_errors(tmp_path, keys, match):
    with pytest.raises(GanrunError, match=match):
        backend(tmp_path, **keys)
    assert not (tmp_path / "wandb").exists()


def test_online_without_login_is_a_clear_error(tmp_path):
    """logger.mode=online with no API key: a GanrunError that names the fix (offline + sync)."""
    with pytest.raises(
        GanrunError, match=r"logger\.mode=online.*wandb login.*logger\.mode=offline"
    ):
        backend(tmp_path, mode="online")


def test_importing_ganrun_does_not_import_wandb():
    """wandb loads only when logger=wandb makes a backend."""
    code = "import sys, ganrun.cli.main, ganrun.training.train, ganrun.build; print('wandb' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_multirun_jobs_share_one_group(tmp_path):
    """`ganrun train -m seed=0,1 logger=wandb`: one W&B run per job, all in the sweep's group."""
    from test_cli import collect, launch

    sweep = tmp_path / "sweep"
    args = ("train", "-m", "debug=smoke", *WANDB, "seed=0,1", f"hydra.sweep.dir={sweep}")
    result = collect({"sweep": launch(tmp_path, *args)})["sweep"]
    assert result.rc == 0, result.out
    for job in (0, 1):
        (session,) = sessions(sweep / str(job))
        assert session.run.run_group == str(sweep)
        assert session.run.display_name == f"dcgan-ns-digits-{job}"
        assert session.config["seed"] == job
        assert sorted(logged(session, "loss/d")) == [1, 2, 3, 4]
        assert session.exit_code == 0

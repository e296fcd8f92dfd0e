"""`ganrun train -m` in subprocesses: grid sweeps, failed jobs, joblib, Optuna, `ganrun runs`.

Every sweep runs the smoke preset (a second per job); the independent sweeps run
concurrently in one module fixture, as in test_cli.py, and each test checks one result.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import joblib
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_cli import assert_clean_error, collect, launch

from ganrun.config import CONF, register
from ganrun.tracking.runs_table import collect_runs, csv_text

SMOKE = "debug=smoke"
SWEEPS = {"fail": 3, "grid": 4, "joblib": 2, "optuna": 3}  # sweep folder -> jobs, sorted by name
# the ring8 search on a model just big enough that trials differ within 20 steps
OPTUNA = [
    "hparams_search=ring8_modes",
    SMOKE,
    "hydra.sweeper.n_trials=3",
    "trainer.max_steps=20",
    "trainer.eval_every=5",
    "trainer.eval_samples=500",
    "trainer.batch_size=64",
    "model.generator.width=32",
    "model.discriminator.width=32",
]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweeps")
    r = collect(
        {
            "grid": launch(
                tmp,
                "train",
                "-m",
                SMOKE,
                "loss=ns,hinge",
                "optimizer.g.lr=1e-4,2e-4",
                f"hydra.sweep.dir={tmp / 'grid'}",
            ),
            "fail": launch(
                tmp,
                "train",
                "-m",
                SMOKE,
                "trainer.batch_size=8,100000,4",
                f"hydra.sweep.dir={tmp / 'fail'}",
            ),
            "optuna": launch(tmp, "train", "-m", *OPTUNA, f"hydra.sweep.dir={tmp / 'optuna'}"),
        }
    )
    # joblib in a phase of its own: its two workers would compete with the sweeps above
    r.update(
        collect(
            {
                "joblib": launch(
                    tmp,
                    "train",
                    "-m",
                    SMOKE,
                    "loss=ns,hinge",
                    "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2",
                    f"hydra.sweep.dir={tmp / 'joblib'}",
                    unset=("OMP_NUM_THREADS",),  # joblib picks each worker's threads
                ),
            }
        )
    )
    # `ganrun runs` once every sweep has ended
    r.update(
        collect(
            {
                "runs_grid": launch(tmp, "runs", str(tmp / "grid")),
                "runs_all": launch(tmp, "runs", str(tmp)),
                "runs_missing": launch(tmp, "runs", str(tmp / "nope")),
                "runs_empty": launch(tmp, "runs", str(tmp_path_factory.mktemp("empty"))),
            }
        )
    )
    r["tmp"] = tmp
    return r


def summary(folder: Path) -> list[dict[str, str]]:
    with open(folder / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def job(run: Path) -> dict:
    return json.loads((run / "job.json").read_text())


def test_grid_sweep_writes_every_job_and_a_summary(sweeps):
    """A 2x2 sweep: exit 0, four job folders, a 4-row summary whose losses are each job's last."""
    res, sweep = sweeps["grid"], sweeps["tmp"] / "grid"
    assert res.rc == 0, res.out
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    rows = summary(sweep)
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["overrides"] for r in rows] == [
        f"{SMOKE} loss={loss} optimizer.g.lr={lr}"
        for loss in ("ns", "hinge")
        for lr in ("0.0001", "0.0002")  # as Hydra writes the swept values
    ]
    for row in rows:
        assert row["status"] == "completed"
        assert row["error"] == ""
        assert int(row["steps"]) == 4
        last = metrics(sweep / row["job"])[-1]
        assert float(row["loss/d"]) == pytest.approx(last["loss/d"], rel=1e-12)
        assert float(row["loss/g"]) == pytest.approx(last["loss/g"], rel=1e-12)
        assert 0 < float(row["wall s"]) < 300
        assert (sweep / row["job"] / "checkpoints" / "last.pt").is_file()
    md = (sweep / "summary.md").read_text().splitlines()
    assert len([ln for ln in md if ln.startswith("| ")]) == 2 + 4  # header, rule, one per job
    assert "completed" in res.text and f"sweep {sweep}: 4 job(s)" in res.text


def test_failed_job_is_recorded_and_the_sweep_goes_on(sweeps):
    """batch_size=100000 > the dataset: that job failed (first error line kept), the others ran; exit 1."""
    res, sweep = sweeps["fail"], sweeps["tmp"] / "fail"
    assert res.rc == 1, res.out
    assert "Traceback" not in res.out
    rows = summary(sweep)
    assert [r["status"] for r in rows] == ["completed", "failed", "completed"]
    bad = rows[1]
    assert bad["overrides"] == f"{SMOKE} trainer.batch_size=100000"
    assert bad["error"].startswith("trainer.batch_size=100000 is larger than the dataset")
    assert "\n" not in bad["error"]
    assert bad["steps"] == "" and bad["loss/d"] == ""
    record = job(sweep / "1")
    assert record["status"] == "failed" and record["traceback"] is None  # a GanrunError
    assert sorted(p.name for p in (sweep / "1").iterdir()) == ["job.json"]  # failed up front
    assert [int(r["steps"]) for r in (rows[0], rows[2])] == [4, 4]  # the job after it still ran
    assert "1 of 3 job(s) failed: 1" in res.text


def test_joblib_launcher_runs_jobs_in_parallel_workers(sweeps):
    """hydra/launcher=joblib n_jobs=2: both jobs complete with cores // 2 torch threads each."""
    res, sweep = sweeps["joblib"], sweeps["tmp"] / "joblib"
    assert res.rc == 0, res.out
    rows = summary(sweep)
    assert [(r["job"], r["overrides"], r["status"]) for r in rows] == [
        ("0", f"{SMOKE} loss=ns", "completed"),
        ("1", f"{SMOKE} loss=hinge", "completed"),
    ]
    expected_threads = max(joblib.cpu_count() // 2, 1)
    assert [job(sweep / r["job"])["threads"] for r in rows] == [expected_threads] * 2
    # the same config as the basic launcher's job 0 of the failure sweep (smoke: batch 8)
    basic = metrics(sweeps["tmp"] / "fail" / "0")[-1]
    # (to float rounding: a worker may use more threads than the basic launcher's 1)
    assert metrics(sweep / "0")[-1]["loss/d"] == pytest.approx(basic["loss/d"], rel=1e-3)


def test_optuna_preset_minimises_the_objective(sweeps):
    """hparams_search=ring8_modes, 3 trials: each returns its best eval/reverse_kl; Optuna keeps the least."""
    res, sweep = sweeps["optuna"], sweeps["tmp"] / "optuna"
    assert res.rc == 0, res.out
    rows = summary(sweep)
    assert [(r["job"], r["status"]) for r in rows] == [(str(i), "completed") for i in range(3)]
    values = {}
    for row in rows:
        run = sweep / row["job"]
        logged = [m["eval/reverse_kl"] for m in metrics(run) if "eval/reverse_kl" in m]
        assert len(logged) == 4  # evaluations at steps 5, 10, 15, 20
        objective = job(run)["objective"]
        assert objective["metric"] == "eval/reverse_kl" and objective["direction"] == "minimize"
        assert objective["value"] == pytest.approx(min(logged), rel=1e-12)
        assert float(row["objective"]) == pytest.approx(min(logged), rel=1e-12)
        values[row["job"]] = objective["value"]
    assert len(set(values.values())) == 3  # the trials differ, so the choice below means something
    results = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    best_job = min(values, key=values.get)
    assert results["best_value"] == pytest.approx(values[best_job], rel=1e-12)
    params = results["best_params"]
    assert sorted(params) == ["loss", "optimizer.d.lr", "optimizer.g.lr", "trainer.n_critic"]
    assert 1e-4 <= params["optimizer.g.lr"] <= 3e-3 and 1e-4 <= params["optimizer.d.lr"] <= 3e-3
    assert params["loss"] in ("hinge", "ns", "lsgan") and params["trainer.n_critic"] in (1, 2)
    best_overrides = set(job(sweep / best_job)["overrides"])
    assert {f"{k}={v}" for k, v in params.items()} <= best_overrides


def test_runs_prints_the_summary_of_a_sweep(sweeps):
    """`ganrun runs <sweep>`: exit 0 and a row per job, from the same collector as summary.csv."""
    res, grid = sweeps["runs_grid"], sweeps["tmp"] / "grid"
    assert res.rc == 0, res.out
    assert "4 run(s) under" in res.text
    for row in summary(grid):
        assert row["overrides"] in res.text
    assert csv_text(collect_runs(grid)) == (grid / "summary.csv").read_text()


def test_runs_walks_nested_sweeps(sweeps):
    """`ganrun runs <folder of sweeps>` lists every job of every sweep, sorted by folder."""
    res, tmp = sweeps["runs_all"], sweeps["tmp"]
    assert res.rc == 0, res.out
    runs = collect_runs(tmp)
    expected = [f"{name}/{i}" for name, n in SWEEPS.items() for i in range(n)]
    assert [r.job for r in runs] == expected
    assert f"{len(expected)} run(s) under" in res.text
    for name in expected:
        assert f" {name} " in res.text
    statuses = {r.job: r.status for r in runs}
    assert statuses["fail/1"] == "failed" and statuses["grid/3"] == "completed"


def test_runs_bad_folder(sweeps):
    """`ganrun runs` on a missing folder or one with no runs: exit 2 with a clear message."""
    assert_clean_error(sweeps["runs_missing"], "nope", "is not a folder")
    assert_clean_error(sweeps["runs_empty"], "no runs under", "metrics.jsonl")


def compose_with_hydra(*overrides: str):
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_config_composes_and_instantiates():
    """hydra/launcher=slurm composes over submitit_slurm and builds submitit's SLURM launcher."""
    cfg = compose_with_hydra("hydra/launcher=slurm", "hydra.launcher.partition=gpu", SMOKE)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    built = instantiate(launcher)
    assert type(built).__name__ == "SlurmLauncher"
    params = built.params
    assert params["partition"] == "gpu"
    assert (params["gpus_per_node"], params["cpus_per_task"], params["mem_gb"]) == (1, 8, 32)
    assert (params["timeout_min"], params["nodes"], params["tasks_per_node"]) == (240, 1, 1)
    assert params["name"] == "train"
    assert params["submitit_folder"].endswith("/.submitit/%j")


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml"))
)
def test_launcher_yaml_builds(name):
    """Every shipped hydra/launcher config composes and instantiates its launcher."""
    cfg = compose_with_hydra(f"hydra/launcher={name}", SMOKE)
    built = instantiate(cfg.hydra.launcher)
    assert type(built).__name__ == cfg.hydra.launcher._target_.rsplit(".", 1)[1]


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml")))
def test_hparams_search_yaml(name):
    """Every preset: the Optuna sweeper, seeded TPE, the objective's direction, real search keys."""
    cfg = compose_with_hydra(f"hparams_search={name}", SMOKE)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("optuna_sweeper.OptunaSweeper")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert isinstance(sweeper.sampler.seed, int)
    assert cfg.objective.metric and sweeper.direction == cfg.objective.direction
    assert sweeper.max_failure_rate == 1.0  # failed trials are recorded, the search goes on
    assert len(sweeper.params) >= 2
    for key in sweeper.params:  # each searched key exists in the composed config
        assert OmegaConf.select(cfg, key) is not None, key
    if cfg.objective.metric.startswith("eval/"):
        assert cfg.trainer.eval_every > 0


def test_digits_fid_preset():
    """hparams_search=digits_fid minimises the best eval/fid on the default dataset."""
    cfg = compose_with_hydra("hparams_search=digits_fid")
    sweeper = cfg.hydra.sweeper
    assert str(sweeper.direction.value) == "minimize"
    assert (cfg.objective.metric, cfg.objective.reduce.value) == ("eval/fid", "best")
    assert cfg.dataset._target_ == "ganrun.data.digits.Digits"
    assert cfg.trainer.eval_every == 500 and sweeper.sampler.seed == 0
    assert sweeper.n_trials == 30
    assert sorted(sweeper.params) == [
        "loss",
        "optimizer.d.lr",
        "optimizer.g.lr",
        "trainer.n_critic",
    ]

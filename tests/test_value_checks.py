"""Every value checked before any work (issue 13): the check table, the dry step, the CLI.

A wrong type or an impossible value must end in one paragraph naming the key, the value and
a fix, exit code 2, no traceback and no run folder. The table (ganrun.checks) is tested
in-process for many keys; the dry step (training/dry_run.py) on models the table lets
through; the user's reported cases once each as `ganrun` subprocesses (run concurrently);
and a property test throws mistyped and out-of-range values at random keys of the
composed config, mostly in-process through the CLI's own preflight.
"""

from __future__ import annotations

import itertools
import math
import random
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf
from test_cli import assert_clean_error, collect, launch
from test_sweep import job, summary
from torch import nn

from ganrun.build import build_data, check_trainer
from ganrun.checks import RULES, show, violations
from ganrun.cli.preflight import MAX_SWEEP_COMPOSES, preflight, sweep_jobs
from ganrun.config import CONF, register
from ganrun.errors import GanrunError
from ganrun.training.distributed import launch_devices
from ganrun.training.dry_run import dry_step
from ganrun.training.perf import COMPILE_MODES
from ganrun.training.rng import rng_state
from ganrun.training.train import train

CPU = torch.device("cpu")
SMOKE = "debug=smoke"


def plain(cfg: DictConfig) -> DictConfig:
    """What train() works on: enums as strings, interpolations resolved."""
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def checked(*args: str) -> DictConfig | None:
    """The CLI's preflight: compose `args` and check their values (the schemas registered)."""
    register()
    return preflight(str(CONF), "train", list(args))


def up_front(*overrides: str) -> None:
    """What runs before Hydra makes a run folder, in the CLI's order: preflight (compose and
    the check table), the number of processes, then train()'s first check (check_trainer,
    before any data or model is built)."""
    args = [SMOKE, *overrides]
    cfg = checked(*args)
    launch_devices(cfg, args)
    check_trainer(plain(cfg).trainer, CPU)


# ------------------------------------------------------------------ the table, in-process


def tree(key: str, value: Any) -> DictConfig:
    cfg = OmegaConf.create()
    OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "key, bad, good",
    [
        ("seed", "abc", 0),
        ("seed", -1, 4_294_967_295),
        ("seed", 1.5, 7),
        ("seed", True, 1),
        ("optimizer.g.lr", "abc", 2e-4),
        ("optimizer.g.lr", -1, 1),
        ("optimizer.d.lr", 0.0, 1e-8),
        ("optimizer.g.lr", NAN, 5e-5),
        ("optimizer.g.lr", INF, 1e-3),
        ("optimizer.g.weight_decay", -1e-5, 0.0),
        ("optimizer.d.betas", [0.5, 1.0], [0.0, 0.99]),
        ("optimizer.g.betas", [0.5], [0.5, 0.999]),
        ("optimizer.g.betas", [-0.1, 0.9], [0, 0]),
        ("optimizer.g.betas", "abc", [0.9, 0.999]),
        ("optimizer.g.eps", 0, 1e-8),
        ("optimizer.d.momentum", -0.9, 0.9),
        ("model.z_dim", 0, 1),
        ("model.z_dim", 64.0, 64),
        ("model.generator.z_dim", -3, 128),
        ("model.generator.width", 0, 64),
        ("model.discriminator.width", "wide", 8),
        ("model.generator.depth", 0, 3),
        ("model.discriminator.depth", "abc", None),
        ("model.discriminator.dropout", 1.0, 0.5),
        ("model.discriminator.slope", -0.2, 0.0),
        ("model.sn_d", 1, True),
        ("model.virtual_bn", "yes", False),
        ("loss.real_label", 1.1, 0.9),
        ("loss.clip", 0, 0.01),
        ("loss.penalties.gp.weight", -1, 0),
        ("loss.penalties.r1.weight", "ten", 10.0),
        ("loss.penalties.r1.every", 0, 16),
        ("loss.penalties.dragan.scale", -0.5, 0.5),
        ("method.g_regularisers.ortho.weight", -1e-4, 1e-4),
        ("method.g_regularisers.pl.every", 2.5, 4),
        ("conditioning.generator.embed_dim", 0, 32),
        ("conditioning.discriminator.weight", -1, 1.0),
        ("dataset.resolution", 0, 28),
        ("dataset.resolution", "big", 64),
        ("dataset.channels", 2, 1),
        ("dataset.num_workers", -1, 0),
        ("dataset.std", 0, 0.01),
        ("metrics.features.batch_size", 0, 200),
        ("metrics.kid.subsets", 0, 100),
    ],
)
def test_rule_rejects_the_bad_value_and_accepts_the_good(key, bad, good):
    """One sentence for the bad value: key=value, what it must be, an example; none for the good."""
    found = violations(tree(key, bad))
    assert len(found) == 1, found
    assert found[0].startswith(f"{key}={show(bad)} must be "), found
    assert f"(e.g. {key}=" in found[0]
    assert violations(tree(key, good)) == []


def test_every_rule_example_passes_its_own_check():
    """The fix a message suggests is itself valid (parsed as the command line parses it)."""
    parser = OverridesParser.create()
    for rule in RULES:
        value = parser.parse_override(f"k={rule.example}").value()
        assert rule.check(value), (rule.pattern, rule.example)


def test_interpolations_are_checked_where_they_point():
    """model.generator.z_dim is ${model.z_dim}: z_dim=0 is reported once, as model.z_dim."""
    cfg = OmegaConf.create({"model": {"z_dim": 0, "generator": {"z_dim": "${model.z_dim}"}}})
    assert violations(cfg) == ["model.z_dim=0 must be an integer >= 1 (e.g. model.z_dim=100)."]


def test_every_shipped_option_passes_the_checks():
    """No false alarms: each YAML of the checked groups composes and passes, e.g. every loss,
    model, dataset, optimizer, conditioning, metric and experiment."""
    groups = ["model", "model/generator", "model/discriminator", "loss", "dataset", "optimizer"]
    groups += ["conditioning", "method", "schedule"]
    options = {g: sorted(p.stem for p in (CONF / g).glob("*.yaml")) for g in groups}
    rows = [
        [f"{g}={opts[i % len(opts)]}" for g, opts in options.items()]
        for i in range(max(map(len, options.values())))
    ]
    for preset in ("experiment", "hparams_search"):
        rows += [[f"{preset}={p.stem}"] for p in sorted((CONF / preset).glob("*.yaml"))]
    rows += [["metrics=[fid,kid,is,pr]", "metrics/features=inception"]]
    for row in rows:
        rooted = ("dataset=image_folder", "dataset=paired_folder", "dataset=unpaired_folder")
        folder = any(r in row for r in rooted) or "experiment=stylegan2_folder" in row
        row += ["dataset.root=x"] if folder else []
        assert checked(*row) is not None, row


# ------------------------------------------------------------------ sweeps


def test_sweep_jobs_split_like_the_basic_sweeper():
    """Comma lists and range() give a job each, several keys every combination; interval()
    is left to the sweeper; a big grid is covered value by value."""
    jobs = sweep_jobs(["loss=ns,hinge", "seed=range(2)", "model=mlp", "x=interval(0,1)"])
    assert jobs == [
        ["loss=ns", "seed=0", "model=mlp"],
        ["loss=ns", "seed=1", "model=mlp"],
        ["loss=hinge", "seed=0", "model=mlp"],
        ["loss=hinge", "seed=1", "model=mlp"],
    ]
    big = sweep_jobs([f"k{i}=1,2,3" for i in range(4)])  # 81 > MAX_SWEEP_COMPOSES
    assert 3**4 > MAX_SWEEP_COMPOSES and len(big) == 1 + 4 * 2
    for i, value in itertools.product(range(4), (1, 2, 3)):
        assert any(f"k{i}={value}" in j for j in big)


def test_sweep_value_that_cannot_compose_fails_up_front():
    with pytest.raises(GanrunError, match="trainer.batch_size=abc"):
        checked("-m", SMOKE, "trainer.batch_size=8,abc")
    assert checked("-m", SMOKE, "optimizer.g.lr=-1,2e-4") is None  # each job checks its values


# ------------------------------------------------------------------ the dry step


class HalfSizeGenerator(nn.Module):
    """Images at half the data's resolution: a generator the discriminator cannot take."""

    def __init__(self, z_dim: int, width: int, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        c, h, w = data_shape
        self.shape = (c, h // 2, w // 2)
        self.fc = nn.Linear(z_dim, math.prod(self.shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(len(z), *self.shape)


def dry(*overrides: str) -> None:
    cfg = plain(compose_cfg(*overrides))
    dry_step(cfg, build_data(cfg), CPU)


def streams() -> dict[str, Any]:
    state = rng_state()
    return {
        "torch": state["torch"].clone(),
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].copy(),
    }


def test_dry_step_passes_and_leaves_every_random_stream():
    """A good config passes; torch, Python and NumPy draw the same numbers after it as before."""
    torch.manual_seed(3)
    before = streams()
    dry("loss=wgan_gp", "conditioning=projection")  # penalties, labels: every phase runs
    after = streams()
    assert torch.equal(before["torch"], after["torch"])
    assert before["python"] == after["python"]
    np.testing.assert_array_equal(before["numpy"], after["numpy"])


@pytest.mark.parametrize(
    "override, player",
    [("model.generator.width=0", "G"), ("model.discriminator.width=0", "D")],
)
def test_dry_step_names_the_model_keys_and_the_torch_error(override, player):
    """A model the table did not see (called without preflight): GanrunError naming the
    model keys, the network that failed and torch's first line, without its traceback."""
    with pytest.raises(GanrunError) as info:
        dry(override)
    message = str(info.value)
    assert message.startswith("model.generator / model.discriminator: one training step")
    assert f"failed in {player}'s network" in message
    assert "RuntimeError: " in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_dry_step_catches_a_shape_mismatch():
    """G's images do not fit D: the D step fails up front, naming D."""
    with pytest.raises(GanrunError, match="failed in D's network before the run started"):
        dry(f"model.generator._target_={__name__}.{HalfSizeGenerator.__name__}")


def test_train_with_a_broken_model_leaves_no_run_folder(tmp_path):
    """train() itself (no preflight): the dry step fails before the run folder exists."""
    run = tmp_path / "run"
    with pytest.raises(GanrunError, match="model.generator / model.discriminator"):
        train(compose_cfg("model.discriminator.width=0"), run)
    assert not run.exists()


# ------------------------------------------------------------------ the user's cases, CLI

USER_CASES = {
    "lr_abc": (["optimizer.g.lr=abc"], "optimizer.g.lr=abc must be a number > 0"),
    "lr_negative": (["optimizer.g.lr=-1"], "optimizer.g.lr=-1 must be a number > 0"),
    "seed_abc": (["seed=abc"], "seed=abc must be an integer"),
    "threads": (["trainer.threads=-1"], "trainer.threads=-1 must be >= 0 (0: torch's default)"),
    "z_dim": (["model.z_dim=0"], "model.z_dim=0 must be an integer >= 1"),
    "width": (["model.generator.width=0"], "model.generator.width=0 must be an integer >= 1"),
    "gp_weight": (
        ["loss=wgan_gp", "loss.penalties.gp.weight=-1"],
        "loss.penalties.gp.weight=-1 must be a number >= 0",
    ),
}


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("values")
    procs = {
        name: launch(tmp, "train", SMOKE, *args, f"hydra.run.dir={tmp / name}")
        for name, (args, _) in USER_CASES.items()
    }
    procs["sweep_type"] = launch(
        tmp, "train", "-m", SMOKE, "trainer.batch_size=abc", f"hydra.sweep.dir={tmp / 'sw_type'}"
    )
    procs["sweep_lr"] = launch(
        tmp, "train", "-m", SMOKE, "optimizer.g.lr=-1,2e-4", f"hydra.sweep.dir={tmp / 'sw_lr'}"
    )
    return {"tmp": tmp, **collect(procs)}


@pytest.mark.parametrize("name", list(USER_CASES))
def test_user_case_fails_up_front(cli, name):
    """Exit 2, the key, the value and the fix in one message, no traceback, no run folder."""
    _, message = USER_CASES[name]
    assert_clean_error(cli[name], message)
    assert not (cli["tmp"] / name).exists()


def test_sweep_with_a_value_that_cannot_compose(cli):
    """`-m trainer.batch_size=abc`: ganrun's message (not Hydra's), exit 2, no sweep folder."""
    assert_clean_error(cli["sweep_type"], "trainer.batch_size=abc", "Integer")
    assert "HYDRA_FULL_ERROR" not in cli["sweep_type"].out
    assert not (cli["tmp"] / "sw_type").exists()


def test_sweep_job_with_a_bad_value_fails_and_the_sweep_goes_on(cli):
    """`-m optimizer.g.lr=-1,2e-4`: job 0 fails with ganrun's message in job.json, job 1 trains."""
    res, sweep = cli["sweep_lr"], cli["tmp"] / "sw_lr"
    assert res.rc == 1, res.out
    assert "Traceback" not in res.out
    record = job(sweep / "0")
    assert record["status"] == "failed" and record["traceback"] is None
    assert record["error"] == "optimizer.g.lr=-1 must be a number > 0 (e.g. optimizer.g.lr=2e-4)."
    assert sorted(p.name for p in (sweep / "0").iterdir()) == ["job.json"]
    assert [r["status"] for r in summary(sweep)] == ["failed", "completed"]


# ------------------------------------------------------------------ property test

# keys that take anything: class paths, file paths, metric names, backend names
FREE_FORM = (
    "*._target_",
    "*._partial_",
    "resume",
    "objective.metric",
    "metrics.*.weights",
    "trainer.compile_backend",  # any torch.compile backend (checked only with compile=true)
)
WORDS = st.from_regex(r"[a-z]{3,8}", fullmatch=True).filter(
    lambda w: w not in {"true", "false", "null", "nan", "inf", "yes", "off"}
)  # words Hydra or OmegaConf would read as a bool, null or number
NEG = st.integers(-(10**6), -1) | st.floats(-1e6, -1e-6)
NON_POSITIVE = st.integers(-(10**6), 0)
# an independent statement of the ranges (not read from ganrun.checks): pattern -> bad values
OUT_OF_RANGE = {
    "seed": st.integers(-(10**6), -1) | st.integers(2**32, 2**40),
    "optimizer.*.lr": st.floats(-1e3, 0) | st.just(NAN),
    "optimizer.*.weight_decay": NEG,
    "optimizer.*.betas": st.tuples(st.floats(1, 10) | st.floats(-10, -1e-6), st.floats(0, 0.99))
    | st.lists(st.floats(0, 0.9), min_size=3, max_size=4),
    "model.z_dim": NON_POSITIVE,
    "model.*.z_dim": NON_POSITIVE,
    "model.*.width": NON_POSITIVE,
    "model.*.slope": NEG,
    "model.*.dropout": st.floats(1, 10) | NEG,
    "loss.real_label": st.floats(1.001, 10) | NEG,
    "dataset.resolution": NON_POSITIVE,
    "metrics.features.batch_size": NON_POSITIVE,
    "trainer.max_steps": st.integers(-(10**6), -1),
    "trainer.batch_size": NON_POSITIVE,
    "trainer.n_critic": NON_POSITIVE,
    "trainer.accumulate": NON_POSITIVE,
    "trainer.n_samples": NON_POSITIVE,
    "trainer.eval_samples": NON_POSITIVE,
    "trainer.devices": NON_POSITIVE,
    "trainer.*_every": st.integers(-(10**6), -1),
    "trainer.keep_last": st.integers(-(10**6), -1),
    "trainer.threads": st.integers(-(10**6), -1),
    "trainer.instance_noise_steps": st.integers(-(10**6), -1),
    "trainer.instance_noise": NEG | st.just(NAN),
    "trainer.grad_clip": NEG | st.just(NAN),
    "trainer.ema_decay": st.floats(1, 10) | NEG | st.just(NAN),
    "trainer.ema_kimg": NEG,
    "trainer.ema_rampup": st.floats(-10, 0),
}


def typed(value: Any) -> str:
    """A value as an override: 1.5, -3, nan, [0.5,1.2], abc."""
    if isinstance(value, (list, tuple)):
        return f"[{','.join(map(typed, value))}]"
    return repr(value) if isinstance(value, float) else str(value)


@cache
def defaults() -> dict[str, Any]:
    """Leaf key -> default value of the composed train config (smoke preset), but the
    keys that take anything."""
    cfg = compose_cfg()

    def walk(node: DictConfig, prefix: str = "") -> dict[str, Any]:
        out = {}
        for key in node.keys():
            full = f"{prefix}{key}"
            value = node[key]
            if isinstance(value, DictConfig):
                out.update(walk(value, f"{full}."))
            elif not any(fnmatchcase(full, p) for p in FREE_FORM):
                out[full] = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
        return out

    return walk(cfg)


def mistyped(key: str, default: Any) -> st.SearchStrategy:
    """Values of the wrong type for `key`, judged by its default."""
    if isinstance(default, bool):
        return WORDS | st.floats(0.1, 0.9)
    if isinstance(default, (int, float)):
        fraction = st.floats(-100, 100).filter(lambda x: not x.is_integer())
        return (
            WORDS
            | st.lists(st.integers(0, 9), min_size=2, max_size=2)
            | (fraction if isinstance(default, int) else st.nothing())
        )
    if isinstance(default, list):
        return WORDS | st.lists(WORDS, min_size=2, max_size=2)
    choices = [c.name for c in type(default)] if hasattr(type(default), "__members__") else []
    choices += list(COMPILE_MODES) if key == "trainer.compile_mode" else []
    return WORDS.filter(lambda w: w not in choices)


@st.composite
def bad_override(draw: st.DrawFn) -> tuple[str, str]:
    """(key, key=value): a random key of the config with a mistyped or out-of-range value."""
    key = draw(st.sampled_from(sorted(defaults())))
    strategies = [mistyped(key, defaults()[key])]
    strategies += [s for p, s in OUT_OF_RANGE.items() if fnmatchcase(key, p)]
    value = draw(st.one_of(strategies))
    return key, f"{key}={typed(value)}"


def assert_one_message_naming(err: GanrunError, key: str) -> None:
    message = str(err)
    assert f"{key}=" in message, message
    assert "\n" not in message and "Traceback" not in message, message


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(bad_override())
def test_any_bad_value_fails_up_front(case):
    """In-process, through the CLI's own preflight (and train()'s first check)."""
    key, override = case
    with pytest.raises(GanrunError) as info:
        up_front(override)
    assert_one_message_naming(info.value, key)


@settings(max_examples=3, derandomize=True, deadline=None)
@given(bad_override())
def test_any_bad_value_fails_up_front_in_the_cli(tmp_path_factory, case):
    """A few of the same cases as `ganrun train` subprocesses: exit 2 and no run folder."""
    key, override = case
    tmp = tmp_path_factory.mktemp("prop")
    run: Path = tmp / "run"
    res = collect({"r": launch(tmp, "train", SMOKE, override, f"hydra.run.dir={run}")})["r"]
    assert_clean_error(res, f"{key}=")
    assert not run.exists()

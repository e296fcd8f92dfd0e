"""Every `ganrun train|sample|eval` command shown in the README composes (a typo there fails here)."""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganrun.cli.main import CONF, _real_dataset
from ganrun.cli.preflight import preflight
from ganrun.config import register


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    lines = re.findall(r"^ganrun (?:train|sample|eval)\b.*$", text, flags=re.M)
    return [re.sub(r"\s+#.*$", "", line).replace("$P", "ganrun.losses.penalties") for line in lines]


def test_readme_shows_the_zoo():
    """The README lists a command for each objective and the main stabilizers (at least 30)."""
    commands = readme_commands()
    assert 30 <= len(commands) <= 200
    for loss in ("minimax", "ns", "wgan", "wgan_gp", "dragan", "lsgan", "hinge", "rsgan", "ragan"):
        assert any(f"loss={loss}" in c.split() for c in commands), loss


def test_readme_shows_eval():
    """`ganrun eval` on a checkpoint with every metric, on two image sets, and eval during training."""
    commands = [c.split() for c in readme_commands()]
    evals = [c for c in commands if c[1] == "eval"]
    assert any(a.startswith("ckpt=") and "metrics=[fid,kid,is,pr]" in c for c in evals for a in c)
    assert any({"real", "fake"} <= {a.split("=")[0] for a in c} for c in evals)
    assert any(a.startswith("trainer.eval_every=") for c in commands if c[1] == "train" for a in c)


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_composes(command):
    """preflight() raises GanrunError on any override that would not compose."""
    task, *args = shlex.split(command)[1:]
    if "-m" in args:
        pytest.skip("sweeps compose per job")
    # a checkpoint path in the README is a placeholder; the rest must compose as written
    # (real=, fake= and out= paths are plain strings until `ganrun eval` reads them)
    args = [a for a in args if not a.startswith("resume=")]
    args = ["ckpt=placeholder.pt" if a.startswith("ckpt=") else a for a in args]
    if task == "eval":
        args = _real_dataset(args)  # real=<dataset name> is dataset=<name>, as the CLI reads it
    register()
    cfg = preflight(str(CONF), task, args)
    for arg in args:  # every plain key=value override is in the composed config
        key, _, value = arg.lstrip("+").partition("=")
        if "/" in key or key.startswith("hydra.") or "." not in key or value.startswith("["):
            continue
        assert same(OmegaConf.select(cfg, key), value), (key, value)


def first_job(arg: str) -> str:
    """key=a,b,c -> key=a: the first job of a swept override (list values stay whole)."""
    key, eq, value = arg.partition("=")
    if not eq or value.startswith(("[", "(", "{")):
        return arg
    return f"{key}={value.split(',')[0]}"


@pytest.mark.parametrize("command", [c for c in readme_commands() if " -m " in f"{c} "])
def test_readme_sweep_composes(command):
    """A sweep's first job composes with its Hydra config: launchers and sweepers included."""
    task, *args = shlex.split(command)[1:]
    args = [first_job(a) for a in args if a != "-m"]
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(task, overrides=args, return_hydra_config=True)
    for arg in args:
        key, _, value = arg.partition("=")
        if key in ("hydra/launcher", "hydra/sweeper"):
            assert cfg.hydra[key.split("/")[1]]._target_, arg
        elif "/" not in key and "." in key:
            assert same(OmegaConf.select(cfg, key), value), (key, value)
    if any(a.startswith("hparams_search=") for a in args):
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
        assert cfg.objective.metric is not None


def same(composed: object, written: str) -> bool:
    """A composed value equals the README's text (numbers compared as numbers, enums by value)."""
    composed = getattr(composed, "value", composed)
    if written == "null":  # Hydra's None
        return composed is None
    try:
        return float(composed) == float(written)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(composed).lower() == written.lower()

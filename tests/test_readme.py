"""Every `ganrun train|sample` command shown in the README composes (a typo there fails here)."""

from __future__ import annotations

import re
import shlex
from enum import Enum

import pytest
from conftest import REPO
from omegaconf import OmegaConf

from ganrun.cli import CONF
from ganrun.config import register
from ganrun.preflight import preflight


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    lines = re.findall(r"^ganrun (?:train|sample)\b.*$", text, flags=re.M)
    return [re.sub(r"\s+#.*$", "", line).replace("$P", "ganrun.losses.penalties") for line in lines]


def test_readme_shows_the_zoo():
    """The README lists a command for each objective and the main stabilizers (at least 30)."""
    commands = readme_commands()
    assert 30 <= len(commands) <= 200
    for loss in ("minimax", "ns", "wgan", "wgan_gp", "dragan", "lsgan", "hinge", "rsgan", "ragan"):
        assert any(f"loss={loss}" in c.split() for c in commands), loss


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_composes(command):
    """preflight() raises GanrunError on any override that would not compose."""
    task, *args = shlex.split(command)[1:]
    if "-m" in args:
        pytest.skip("sweeps compose per job")
    # a checkpoint path in the README is a placeholder; the rest must compose as written
    args = [a for a in args if not a.startswith("resume=")]
    args = ["ckpt=placeholder.pt" if a.startswith("ckpt=") else a for a in args]
    register()
    cfg = preflight(str(CONF), task, args)
    for arg in args:  # every plain key=value override is in the composed config
        key, _, value = arg.lstrip("+").partition("=")
        if "/" in key or key.startswith("hydra.") or "." not in key or value.startswith("["):
            continue
        assert same(OmegaConf.select(cfg, key), value), (key, value)


def same(composed: object, written: str) -> bool:
    """A composed value equals the README's text (numbers compared as numbers, enums by value)."""
    composed = composed.value if isinstance(composed, Enum) else composed
    try:
        return float(composed) == float(written)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(composed).lower() == written.lower()

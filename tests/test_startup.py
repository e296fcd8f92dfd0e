"""Start-up: a plain `ganrun train` composes its config once (cli/single_run.py), and gives the
run folder, .hydra/ files and error messages the hydra.main path gives."""

from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import OmegaConf

from ganrun.cli.main import main
from ganrun.cli.single_run import single_run


def counting_composes(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    return calls


def test_single_run_is_only_plain_overrides():
    assert single_run(["debug=smoke", "trainer.max_steps=1"])
    assert not single_run(["-m", "loss=ns,hinge"])
    assert not single_run(["--cfg", "job"])


def test_plain_train_composes_once_and_writes_what_hydra_main_writes(tmp_path, monkeypatch):
    calls = counting_composes(monkeypatch)
    run_dir = tmp_path / "run"
    main(["train", "debug=smoke", "trainer.max_steps=1", f"hydra.run.dir={run_dir}"])
    assert len(calls) == 1  # was 3: ganrun's preflight, hydra.main's get_mode and run
    hydra = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra
    assert hydra.mode == "RUN" and hydra.job.name == "train"
    assert list(hydra.overrides.hydra) == [f"hydra.run.dir={run_dir}", "hydra.mode=RUN"]
    assert list(hydra.overrides.task) == ["debug=smoke", "trainer.max_steps=1"]
    assert hydra.runtime.version_base == "1.3"
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").trainer.max_steps == 1


def test_plain_train_config_mistake_gets_ganruns_message_and_no_folder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "debug=smoke", "trainer.max_step=1", f"hydra.run.dir={run_dir}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown config key 'trainer.max_step'" in err and "trainer.max_steps" in err
    assert not run_dir.exists()


def test_plain_train_bad_value_fails_before_the_folder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "debug=smoke", "trainer.batch_size=0", f"hydra.run.dir={run_dir}"])
    assert exit_info.value.code == 2
    assert "trainer.batch_size" in capsys.readouterr().err
    assert not run_dir.exists()

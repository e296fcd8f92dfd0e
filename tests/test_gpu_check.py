"""scripts/gpu_check.sh's CPU-side parts: the table helper on given results, the refusal on a
machine without CUDA, the wheelhouse bookkeeping of gpu_wheels.sh (offline: wheels already
there), and gpu_requirements.txt against what the GPU tests and benchmarks really import.

The GPU run itself needs a CUDA machine (see the README's GPU check section).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def _load_table():
    spec = importlib.util.spec_from_file_location("gpu_table", SCRIPTS / "gpu_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_table"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gt = _load_table()

SPEED = """\
bench_speed: NVIDIA H200, torch 2.11.0+cu130, synthetic uint8 data
practical peak: 51,234 GFLOP/s (dense fp32 2048x2048 @ 2048x2048 matmul, TF32 off, GPU, best of 5 after 2 warm-up)

DCGAN-64, batch 128: G 3,576,704 + D 2,765,568 parameters, 200 steps after 30
  FLOPs per image: 2.100 GFLOP per training step (the example's step); ganrun's step executes 2.200
  reference DataLoader: 0 workers; ganrun: channels_last=True, fused_optimizer=True, tf32=True, cudnn_benchmark=True
  mode                       img/s   x ref   % peak   peak memory
  reference (eager fp32)   12000.5    1.00    49.2%     1,024 MiB
  ganrun fp32              13000.0    1.08    53.3%       990 MiB
  ganrun bf16+compile: skipped (BackendCompilerFailed: inductor died)
W1201 11:38:52.940000 6876 torch/utils/cpp_extension.py:183] a warning line

Scaling: DCGAN, ganrun bf16, ms per step (img/s)
  resolution              batch 32            batch 64
  32                       1.5 (21333)         2.0 (32000)
  64                             -             4.1 (15610)
"""

FID = """\
mnist: 5000 test vs 5000 train images (1, 28, 28), device cuda, 16 torch threads, pytorch-fid batch 50 / 8 workers, ganrun batch 200; seeded random weights (seed 0)
100%|##########| 100/100 [00:10<00:00,  9.9it/s]
timed: both sets + distance
pytorch-fid  FID 1.234567      20.0 s
ganrun       FID 1.234568       4.0 s (3.1 s Inception features, the rest loading, statistics, distance)
relative FID difference 8.10e-07 (target < 1e-3)
speed-up 5.00x (targets: >= 1.5x CPU, >= 3x GPU)
"""

JUNIT = """\
<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="40.0">
<testcase classname="tests.test_speed_gpu" name="test_a" time="1.5"/>
<testcase classname="tests.test_speed_gpu" name="test_b[wgan_gp]" time="2.0"/>
<testcase classname="tests.test_speed_gpu" name="test_c" time="3.25">
  <failure message="AssertionError: assert 0.5 == 1.0&#10;second line">long text</failure></testcase>
<testcase classname="tests.test_other" name="test_d" time="0.1">
  <error message="failed on setup with &quot;OSError&quot;">trace</error></testcase>
<testcase classname="tests.test_other" name="test_e" time="0.0">
  <skipped message="needs two GPUs"/></testcase>
</testsuite></testsuites>
"""


def test_status_lines():
    device, steps = gt.read_status(
        "# NVIDIA H200, torch 2.11\ntests 0 95.3\nbench_speed 124 150.0\n"
        "bench_fid skip 0 no MNIST files in /x\n"
    )
    assert device == "NVIDIA H200, torch 2.11"
    assert steps == {
        "tests": gt.Step(0, 95.3),
        "bench_speed": gt.Step(124, 150.0),
        "bench_fid": gt.Step(None, 0.0, "no MNIST files in /x"),
    }
    assert [gt.outcome(s) for s in steps.values()] == ["ok", "timed out", "skipped"]
    assert gt.outcome(gt.Step(2, 1.0)) == "failed (exit 2)" and gt.outcome(None) == "not run"


def test_pytest_rows_count_and_list_failures():
    rows = gt.pytest_rows(JUNIT, gt.Step(1, 40.0))
    assert rows == [
        ("pytest -m gpu", "failed (exit 1)", "2 passed, 1 failed, 1 errors, 1 skipped", "40.0"),
        ("  test_speed_gpu::test_c", "failed", "AssertionError: assert 0.5 == 1.0", "3.25"),
        ("  test_other::test_d", "error", 'failed on setup with "OSError"', "0.1"),
    ]
    assert gt.pytest_rows(None, gt.Step(124, 180.0)) == [
        ("pytest -m gpu", "timed out", "no pytest.xml (see pytest.txt)", "180.0")
    ]


def test_speed_rows_parse_every_mode_skip_and_scaling_cell():
    rows = gt.speed_rows(SPEED, gt.Step(0, 120.0))
    assert rows == [
        (
            "bench_speed --device cuda",
            "ok",
            "bench_speed: NVIDIA H200, torch 2.11.0+cu130, synthetic uint8 data",
            "120.0",
        ),
        ("  fp32 matmul peak", "ok", "51,234 GFLOP/s", ""),
        (
            "  DCGAN-64 b128 reference (eager fp32)",
            "ok",
            "12000.5 img/s, 1.00x ref, 49.2% of peak, 1,024 MiB",
            "",
        ),
        (
            "  DCGAN-64 b128 ganrun fp32",
            "ok",
            "13000.0 img/s, 1.08x ref, 53.3% of peak, 990 MiB",
            "",
        ),
        (
            "  DCGAN-64 b128 ganrun bf16+compile",
            "skipped",
            "BackendCompilerFailed: inductor died",
            "",
        ),
        (
            "  scaling 32px (DCGAN, ganrun bf16)",
            "ok",
            "ms/step (img/s): b32 1.5 (21333), b64 2.0 (32000)",
            "",
        ),
        (
            "  scaling 64px (DCGAN, ganrun bf16)",
            "ok",
            "ms/step (img/s): b32 -, b64 4.1 (15610)",
            "",
        ),
    ]


def test_a_failed_speed_step_shows_its_last_line():
    text = "bench_speed: NVIDIA H200\nTraceback (most recent call last):\nRuntimeError: CUDA OOM\n"
    (row,) = gt.speed_rows(text, gt.Step(1, 3.0))
    assert row == ("bench_speed --device cuda", "failed (exit 1)", "RuntimeError: CUDA OOM", "3.0")


def test_fid_rows():
    assert gt.fid_rows(FID, gt.Step(0, 61.5)) == [
        (
            "bench_fid --device cuda",
            "ok",
            "FID 1.234568 (ganrun) vs 1.234567 (pytorch-fid), rel. diff 8.10e-07; "
            "5.00x faster (4.0 s vs 20.0 s)",
            "61.5",
        ),
        ("  images and weights", "ok", "mnist, n=5000, seeded random weights (seed 0)", ""),
    ]
    skipped = gt.Step(None, 0.0, "no MNIST files in .gpu/data")
    assert gt.fid_rows(None, skipped) == [
        ("bench_fid --device cuda", "skipped", "no MNIST files in .gpu/data", "")
    ]


def test_markdown_table_and_the_results_folder(tmp_path):
    assert gt.markdown([("a", "ok", "12 img/s", "1.0"), ("  long check", "failed", "x", "")]) == (
        "| check        | result | figure   | seconds |\n"
        "|--------------|--------|----------|---------|\n"
        "| a            | ok     | 12 img/s | 1.0     |\n"
        "|   long check | failed | x        |         |"
    )
    (tmp_path / "status.txt").write_text(
        "# H200\ntests 1 40.0\nbench_speed 0 120.0\nbench_fid 0 61.5\n"
    )
    (tmp_path / "pytest.xml").write_text(JUNIT)
    (tmp_path / "bench_speed.txt").write_text(SPEED)
    (tmp_path / "bench_fid.txt").write_text(FID)
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "gpu_table.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == (tmp_path / "table.md").read_text()
    lines = out.splitlines()
    assert lines[0] == "GPU check: H200; 222 s in all" and lines[1] == ""
    assert len(lines) == 2 + 2 + 3 + 7 + 2  # title, header, pytest, bench_speed, bench_fid rows
    assert lines[4].startswith("| pytest -m gpu ") and "| failed (exit 1) |" in lines[4]


# --- the shell scripts --------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_gpu_check_without_cuda_exits_with_a_message(tmp_path):
    """On a CPU machine: exit 3, one message that says why and what to run instead, and no
    results folder."""
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "results")}
    out = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_check.sh")], capture_output=True, text=True, env=env
    )
    assert out.returncode == 3, out.stderr
    assert out.stderr.strip() == (
        f"gpu_check.sh: torch {torch.__version__} sees no CUDA device "
        f"(torch.cuda.is_available() is False). This check needs a machine with an NVIDIA "
        f"GPU; here, run the CPU tests instead: .venv/bin/pytest -q"
    )
    assert out.stdout == "" and not (tmp_path / "results").exists()


def requirement_names() -> list[str]:
    lines = (SCRIPTS / "gpu_requirements.txt").read_text().splitlines()
    return [n for n in (ln.split("#", 1)[0].strip() for ln in lines) if n]


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_gpu_wheels_bookkeeping_offline(tmp_path):
    """With every pinned wheel already in the folder, gpu_wheels.sh downloads nothing: it keeps
    them, removes another version of a listed name, an unlisted wheel and the --have names,
    and writes TARGET (python, platforms, have, name==version per wheel)."""
    try:
        pins = {n: md.version(n) for n in requirement_names()}
    except md.PackageNotFoundError as err:
        pytest.skip(f"{err} is not installed here (the dev extras)")
    wheels = tmp_path / ".gpu" / "wheels"
    wheels.mkdir(parents=True)
    for name, version in pins.items():
        (wheels / f"{canon(name).replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"")
    (wheels / "hydra_core-0.0.1-py3-none-any.whl").write_bytes(b"")  # another version
    (wheels / "leftover-1.0-py3-none-any.whl").write_bytes(b"")  # no longer listed
    out = subprocess.run(
        [
            "bash",
            str(SCRIPTS / "gpu_wheels.sh"),
            "--out",
            str(tmp_path / ".gpu"),
            "--no-data",
            "--have",
            "scipy Scikit_Learn",
            "--python",
            "3.11",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert out.returncode == 0, out.stderr
    kept = {n: v for n, v in pins.items() if canon(n) not in ("scipy", "scikit-learn")}
    lines = out.stdout.splitlines()
    assert lines[: len(kept)] == [f"have      {n}=={v}" for n, v in kept.items()]
    assert sorted(lines[len(kept) : -1]) == sorted(
        f"removed   {f}"
        for f in (
            "hydra_core-0.0.1-py3-none-any.whl",
            "leftover-1.0-py3-none-any.whl",
            f"scipy-{pins['scipy']}-py3-none-any.whl",
            f"scikit_learn-{pins['scikit-learn']}-py3-none-any.whl",
        )
    )
    assert re.fullmatch(
        rf"{tmp_path}/.gpu: {len(kept)} wheels, 0 MiB in all \(Python 3.11\)", lines[-1]
    )
    assert len(list(wheels.glob("*.whl"))) == len(kept)
    target = (wheels / "TARGET").read_text().splitlines()
    assert target[0] == "python 3.11" and target[2] == "have scipy Scikit_Learn"
    assert target[1].startswith("platforms manylinux_2_28_x86_64 ")
    assert target[3:] == [f"wheel {n}=={v}" for n, v in kept.items()]


def test_gpu_wheels_refuses_a_bad_python_option(tmp_path):
    out = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_wheels.sh"), "--out", str(tmp_path), "--python", "312"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and not any(tmp_path.iterdir())
    assert "--python 312: give the GPU machine's Python as X.Y, e.g. 3.12" in out.stderr


PROBE = textwrap.dedent(
    """
    import importlib, importlib.metadata as md, io, sys, tempfile
    from pathlib import Path
    sys.path[:0] = ["tests", "scripts"]
    files = sys.argv[1:]
    for f in files:
        importlib.import_module(Path(f).stem)
    for script in ("bench_speed", "bench_fid"):
        importlib.import_module(script)
    import test_train
    from ganrun.cache import cache_dir
    cache_dir()
    with tempfile.TemporaryDirectory() as d:
        test_train.run(Path(d) / "run")   # a smoke run, as the gpu tests train
    tops = {m.split(".")[0] for m in list(sys.modules)}
    dists = md.packages_distributions()
    print("\\n".join(sorted({d for t in tops for d in dists.get(t, [])})))
    """
)

# imported when present, never needed: hydra's plugin scan imports every installed plugin;
# tqdm and charset_normalizer are optional imports of pytorch-fid and numpy's helpers
OPTIONAL = {
    "hydra-joblib-launcher",
    "hydra-optuna-sweeper",
    "hydra-submitit-launcher",
    "tqdm",
    "charset-normalizer",
}


def torch_closure() -> set[str]:
    """torch, torchvision and everything they require (installed with them)."""
    seen, todo = set(), ["torch", "torchvision"]
    while todo:
        name = canon(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def gpu_test_files() -> list[str]:
    """The files gpu_check.sh hands to pytest -m gpu: grep -E with its GPU_MARK pattern."""
    script = (SCRIPTS / "gpu_check.sh").read_text()
    (pattern,) = re.findall(r"^GPU_MARK='(.*)'$", script, flags=re.M)
    out = subprocess.run(
        ["bash", "-c", f"grep -l -E '{pattern}' tests/test_*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_gpu_test_files(tmp_path):
    """The marker pattern finds a module-level pytestmark (one line or a list) and decorators,
    not a file that only mentions the marker in a string (this one)."""
    files = gpu_test_files()
    assert "tests/test_speed_gpu.py" in files and "tests/test_gpu_check.py" not in files
    script = (SCRIPTS / "gpu_check.sh").read_text()
    (pattern,) = re.findall(r"^GPU_MARK='(.*)'$", script, flags=re.M)
    samples = {
        "a.py": "pytestmark = pytest.mark.gpu\n",
        "b.py": "pytestmark = [\n    pytest.mark.gpu,\n]\n",
        "c.py": "@pytest.mark.gpu\ndef test_x(): ...\n",
        "d.py": 'text = "pytest.mark.gpu"\n@pytest.mark.gpux\n',
    }
    for name, text in samples.items():
        (tmp_path / name).write_text(text)
    out = subprocess.run(
        ["bash", "-c", f"grep -l -E '{pattern}' *.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.split() == ["a.py", "b.py", "c.py"]


def test_requirements_cover_what_the_gpu_check_imports():
    """Every distribution that the gpu test files, the two benchmarks and a smoke run import
    is in gpu_requirements.txt or comes with torch/torchvision; scikit-learn is listed (the
    digits csv is read from its folder without importing it)."""
    gpu_files = gpu_test_files()
    assert "tests/test_speed_gpu.py" in gpu_files
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *gpu_files],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    used = {canon(d) for d in out.stdout.split()}
    listed = {canon(n) for n in requirement_names()}
    assert {"hydra-core", "omegaconf", "pytest", "pytorch-fid", "scipy"} <= used
    missing = used - listed - torch_closure() - {"ganrun"} - OPTIONAL
    assert missing == set(), f"add to scripts/gpu_requirements.txt: {sorted(missing)}"
    assert "scikit-learn" in listed and "torch" not in listed and "numpy" not in listed

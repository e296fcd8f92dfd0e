"""Mode-collapse benchmark: train experiment=ring8 / grid25 over several seeds, tabulate.

    .venv/bin/python scripts/mode_collapse.py                       # both presets, seeds 0..4
    .venv/bin/python scripts/mode_collapse.py --experiments ring8 --seeds 0 1 \\
        --extra trainer.max_steps=2000 optimizer.g.lr=5e-4
    .venv/bin/python scripts/mode_collapse.py --experiments ring8_r3gan grid25_r3gan  # R3GAN loss

Each run is ganrun.training.train.train in process on the composed `experiment=<name> seed=<s>`
config (no debug preset) into <out>/<name>/seed<s>/. The figures are the eval/* metrics
of the final step (the EMA generator on trainer.eval_samples fixed latents): modes covered,
% high-quality samples (within 3 std of their nearest mode), reverse KL to uniform over
modes. Wall time is per run, on whatever CPU this is (shared machines make it noisy);
--jobs N runs N trainings at once in separate processes (each preset uses 1 torch thread).
--reuse reads back a seed whose run folder already holds a finished run of exactly the same
resolved config (.hydra/config.yaml; e.g. a pilot copied there) instead of training it again.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from ganrun.config import CONF, register
from ganrun.training.train import train

# Published figures (PacGAN, Lin et al. 2018, Table 2; VEEGAN, Srivastava et al. 2017):
# (label, modes, hq %); the mode counts are out of 8 (ring8) and 25 (grid25).
REFERENCES = {
    "ring8": [("PacGAN4", 7.8, 95.9), ("VEEGAN", 8.0, 52.9)],
    "grid25": [("PacGAN4", 24.8, 93.6), ("VEEGAN", 24.6, 40.0)],
}
N_MODES = {"ring8": 8, "grid25": 25}
KEYS = ("eval/modes", "eval/hq_pct", "eval/reverse_kl")


def dataset_of(experiment: str) -> str:
    """The benchmark an experiment runs: ring8_r3gan is ring8 with another objective."""
    return experiment.split("_")[0]


def final_eval(run_dir: Path, returned: dict[str, float]) -> dict[str, float]:
    """The eval/* metrics of the last evaluated step (train()'s return value, or metrics.jsonl)."""
    if all(k in returned for k in KEYS):
        return {k: returned[k] for k in KEYS}
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in rows if "eval/modes" in r]
    if not evaluated:
        raise SystemExit(f"{run_dir}: no eval/* metrics; set trainer.eval_every > 0")
    return {k: evaluated[-1][k] for k in KEYS}


def finished_run(run_dir: Path, cfg) -> bool:
    """run_dir holds a run of exactly this (resolved) config that reached trainer.max_steps."""
    saved, metrics = run_dir / ".hydra" / "config.yaml", run_dir / "metrics.jsonl"
    if not (saved.is_file() and metrics.is_file()):
        return False
    same = OmegaConf.to_container(OmegaConf.load(saved)) == OmegaConf.to_container(
        cfg, resolve=True, enum_to_str=True
    )
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    return same and bool(rows) and rows[-1]["step"] == cfg.trainer.max_steps


def run_one(
    experiment: str, seed: int, extra: list[str], out: Path, reuse: bool = False
) -> dict[str, float]:
    register()
    overrides = [f"experiment={experiment}", f"seed={seed}", *extra]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    run_dir = out / experiment / f"seed{seed}"
    if reuse and finished_run(run_dir, cfg):
        # wall time: from writing the config to the last metrics line
        wall = (run_dir / "metrics.jsonl").stat().st_mtime
        wall -= (run_dir / ".hydra" / "config.yaml").stat().st_mtime
        returned: dict[str, float] = {}
    else:
        quiet = Console(file=io.StringIO())
        start = time.perf_counter()
        returned = train(cfg, run_dir, overrides=overrides, console=quiet)
        wall = time.perf_counter() - start
    result = {**final_eval(run_dir, returned), "wall_s": wall, "seed": seed}
    print(
        f"{experiment} seed {seed}: modes {result['eval/modes']:.0f}  "
        f"hq {result['eval/hq_pct']:.1f} %  rkl {result['eval/reverse_kl']:.4f}  "
        f"{wall:.1f} s",
        flush=True,
    )
    return result


def table(results: dict[str, list[dict[str, float]]], jobs: int) -> Table:
    t = Table(title=f"mode collapse (final EMA generator; {jobs} run(s) at a time)")
    for col in ("experiment", "runs", "modes mean (min)", "HQ % mean (min)", "reverse KL mean"):
        t.add_column(col)
    t.add_column("wall s/run mean (max)")
    for name, runs in results.items():
        k = N_MODES.get(dataset_of(name))
        of = f"/{k}" if k else ""
        modes = [r["eval/modes"] for r in runs]
        hq = [r["eval/hq_pct"] for r in runs]
        rkl = [r["eval/reverse_kl"] for r in runs]
        wall = [r["wall_s"] for r in runs]
        t.add_row(
            f"{name} (ganrun)",
            str(len(runs)),
            f"{statistics.mean(modes):.1f}{of} ({min(modes):.0f})",
            f"{statistics.mean(hq):.1f} ({min(hq):.1f})",
            f"{statistics.mean(rkl):.4f}",
            f"{statistics.mean(wall):.1f} ({max(wall):.1f})",
        )
        for label, ref_modes, ref_hq in REFERENCES.get(dataset_of(name), []):
            t.add_row(f"{name} {label} (paper)", "", f"{ref_modes}{of}", f"{ref_hq}", "", "")
    return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiments", nargs="+", default=["ring8", "grid25"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--out", type=Path, default=None, help="default outputs/mode_collapse/<time>")
    p.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every run")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (separate processes)")
    p.add_argument(
        "--reuse", action="store_true", help="read back finished runs of the same config"
    )
    args = p.parse_args(argv)
    out = args.out or Path("outputs/mode_collapse") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.resolve()
    jobs = [(name, s) for name in args.experiments for s in args.seeds]
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, name, s, args.extra, out, args.reuse) for name, s in jobs]
        done = [f.result() for f in futures]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.experiments}
    for (name, _), result in zip(jobs, done):
        results[name].append(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"extra": args.extra, **results}, indent=1))
    Console(width=140).print(table(results, args.jobs))
    print(f"runs and results.json under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Baseline PSNR / SSIM / L1 (and digit accuracy) of the offline translation tasks: the numbers
a translator must beat, on the same test images `ganrun eval` scores it on. No training.

    python scripts/translation_baselines.py --root ../shared/data            # CIFAR-10 + MNIST test
    python scripts/translation_baselines.py --root ../shared/data --n 1000 --tasks superres

Each task is built from its shipped config (conf/dataset/<task>.yaml) with the source read from
its test split only (dataset.source.split=test: the test set is then the first --n test images,
the same images as with the default train/test configs), and scored by
evaluation/translation.TranslationEvaluator. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from ganrun.build import build_data
from ganrun.config import CONF, register
from ganrun.evaluation.translation import TranslationEvaluator

TASKS = {  # task -> (overrides, what it shows)
    "colorization": ([], "CIFAR-10 test, grey -> colour"),
    "superres": ([], "CIFAR-10 test, x4 bicubic down/up -> full"),
    "inpainting": ([], "CIFAR-10 test, centre half masked -> full"),
    "edges": ([], "MNIST test, Sobel edges -> digit"),
}
METRICS = ("psnr", "ssim", "l1", "digit_acc")


def task_rows(task: str, root: str, n: int) -> list[str]:
    overrides, what = TASKS[task]
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"dataset={task}",
                f"dataset.source.root={root}",
                "dataset.source.split=test",
                f"dataset.test_size={n}",
                *overrides,
            ],
        )
    data = build_data(cfg)
    values = TranslationEvaluator(data, n).baseline_values
    rows = []
    for name in [*data.baselines(), "target"]:
        cells = [
            f"{values[f'{m}_{name}']:.4f}" if f"{m}_{name}" in values else "-" for m in METRICS
        ]
        if all(c == "-" for c in cells):
            continue
        rows.append(
            f"| {task} ({what}) | {name} | {len(data.test_set())} | " + " | ".join(cells) + " |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", default="../shared/data", help="folder holding MNIST/ and cifar-10-batches-py/"
    )
    parser.add_argument(
        "--n", type=int, default=10_000, help="test images per task (at most the split)"
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args(argv)
    root = str(Path(args.root).resolve())
    print("| task | baseline | images | PSNR (dB) | SSIM | L1 [0,1] | digit acc |")
    print("|---|---|---|---|---|---|---|")
    for task in args.tasks:
        start = time.perf_counter()
        for row in task_rows(task, root, args.n):
            print(row, flush=True)
        print(f"{task}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

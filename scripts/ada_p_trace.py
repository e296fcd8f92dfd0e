"""ADA's p responding to D's overfitting in a short run: the p and r_t traces, as a figure.

    .venv/bin/python scripts/ada_p_trace.py                       # digits, ~3 min on 2 CPU cores
    .venv/bin/python scripts/ada_p_trace.py --steps 2000 --kimg 50 --out outputs/ada_trace

Two runs of the same model on the embedded digits (1,797 images, a small set D learns to tell
apart), same seed:

  baseline  augment=ada with target=null p=0: the pipeline never augments, but r_t =
            E[sign(D(real))] is still measured and logged, so D's overfitting is visible;
  ada       augment=ada with the adaptive p (target 0.6), p starting at 0.

ADA's speed kimg is lowered from the paper's 500 (p can cross 0 -> 1 in kimg thousand images)
so that p has room to move within a CPU-sized run; --target moves the target (a tiny model
early in training is sure of the reals: a higher target shows p settling below the cap). Writes <out>/ada_p_trace.png and prints the
traces (every log step: images seen, p, r_t) of both runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import ganrun  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="G steps per run")
    ap.add_argument("--batch", type=int, default=32, help="images per D step")
    ap.add_argument("--kimg", type=float, default=5.0, help="ADA speed (paper: 500)")
    ap.add_argument("--width", type=int, default=16, help="DCGAN G and D width")
    ap.add_argument("--target", type=float, default=0.6, help="ADA's target r_t (paper: 0.6)")
    ap.add_argument("--no-baseline", action="store_true", help="only the adaptive run")
    ap.add_argument("--log-every", type=int, default=10, help="steps between logged rows")
    ap.add_argument("--out", type=Path, default=Path("outputs/ada_p_trace"))
    return ap.parse_args()


def trace(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "aug/p" in r]


def main() -> None:
    args = parse_args()
    common = [
        "augment=ada",
        "trainer.device=cpu",
        f"trainer.max_steps={args.steps}",
        f"trainer.batch_size={args.batch}",
        f"trainer.log_every={args.log_every}",
        f"trainer.sample_every={args.steps}",
        f"trainer.ckpt_every={args.steps}",
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
        f"augment.kimg={args.kimg}",
    ]
    runs = {
        "baseline (p=0, r_t measured)": ["augment.target=null", "augment.p=0"],
        f"ada (target {args.target:g}, kimg {args.kimg:g})": [f"augment.target={args.target}"],
    }
    if args.no_baseline:
        runs.pop("baseline (p=0, r_t measured)")
    traces = {}
    for i, (name, extra) in enumerate(runs.items()):
        folder = ganrun.train([*common, *extra], run_dir=args.out / f"run{i}")
        traces[name] = trace(folder)
    fig, (ax_p, ax_rt) = plt.subplots(2, 1, sharex=True, figsize=(6, 5))
    for name, rows in traces.items():
        kimg = [r["step"] * args.batch / 1000 for r in rows]
        ax_p.plot(kimg, [r["aug/p"] for r in rows], label=name)
        ax_rt.plot(kimg, [r["aug/rt"] for r in rows], label=name)
    ax_rt.axhline(args.target, color="grey", linestyle="--", linewidth=1, label="target")
    ax_p.set_ylabel("p")
    ax_rt.set_ylabel("r_t = E[sign D(real)]")
    ax_rt.set_xlabel("real images seen by D (thousands)")
    ax_p.legend(fontsize=8)
    ax_rt.legend(fontsize=8)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "ada_p_trace.png", dpi=120)
    for name, rows in traces.items():
        print(f"\n{name}\n  step   kimg      p     r_t")
        for r in rows:
            print(
                f"  {r['step']:4d} {r['step'] * args.batch / 1000:6.2f} {r['aug/p']:6.3f} {r['aug/rt']:7.3f}"
            )
    print(f"\nfigure: {args.out / 'ada_p_trace.png'}")


if __name__ == "__main__":
    main()

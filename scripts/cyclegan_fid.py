"""CycleGAN FID over training, both directions, beside the untranslated inputs (issue 12).

    python scripts/cyclegan_fid.py <run folder> [--features digit_classifier|inception]
        [--weights pt_inception-2015-12-05-6726825d.pth] [--n 1000] [--out fid.json]

For every checkpoint of the run (checkpoints/step_<N>.pt, then last.pt when it is a later
step), rebuilt from the checkpoint alone as `ganrun eval` does, it translates the test images
of each domain and prints a markdown table:

    step | FID G_AB(test A) vs test B | FID G_BA(test B) vs test A

with two reference rows in the same feature space: `copy` (the untranslated test A against
test B: the FID a translator has to get under; the Frechet distance is symmetric, so it is
the baseline of both directions) and `floor` (B's own training images against test B, and
likewise for A: what two samples of one domain score at this n).

The feature space is the dataset's own (`inception` for CIFAR-10 pairs) when its weights are
at hand; offline without them, `--features digit_classifier` gives a digit-classifier FID
(the packaged MNIST classifier read per channel): a fixed, cheap feature space, not the
Inception FID papers report, so compare its numbers only with each other.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ganrun.config import CONF
from ganrun.evaluation.features.extractor import extract
from ganrun.evaluation.image_evaluator import build_extractor
from ganrun.evaluation.metrics.frechet import feature_stats, frechet_distance
from ganrun.evaluation.translation import translate_all
from ganrun.evaluation.translation_command import translator_from_checkpoint
from ganrun.sampling.images import to_uint8
from ganrun.training.methods.translation import translator_of


def checkpoints(run: Path) -> list[Path]:
    """step_<N>.pt in step order, then last.pt when its step is later than theirs."""
    folder = run / "checkpoints"
    steps = sorted(folder.glob("step_*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))
    last = folder / "last.pt"
    return steps + ([last] if last.is_file() else [])


class Scorer:
    """Features of the fixed real sets once; FID of any uint8 images against one of them."""

    def __init__(self, extractor, batch: int = 500) -> None:
        self.extractor, self.batch = extractor, batch
        self.stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, _ = extract(self.extractor, images.split(self.batch))
        return feature_stats(feats)

    def add(self, name: str, images: torch.Tensor) -> None:
        self.stats[name] = self.features(images)

    def fid(self, images: torch.Tensor, against: str) -> float:
        mu, sigma = self.features(images)
        return float(frechet_distance(mu, sigma, *self.stats[against]))

    def row(self, step: int | str, as_b: torch.Tensor, as_a: torch.Tensor) -> dict:
        """FID of images standing for domain B (against test B) and for A (against test A)."""
        return {"step": step, "a_to_b": self.fid(as_b, "B"), "b_to_a": self.fid(as_a, "A")}


def feature_node(name: str, weights: str | None):
    node = OmegaConf.load(CONF / "metrics" / "features" / f"{name}.yaml")
    node.weights = weights
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a method=cyclegan run folder")
    parser.add_argument("--features", default="digit_classifier", help="conf/metrics/features/")
    parser.add_argument("--weights", default=None, help="the extractor's weights file")
    parser.add_argument("--n", type=int, default=1000, help="test images per domain (at most)")
    parser.add_argument("--out", type=Path, default=None, help="json of the rows")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    device = torch.device("cpu")
    paths = checkpoints(args.run)
    if not paths:
        raise SystemExit(f"no checkpoints in {args.run / 'checkpoints'}")
    extractor = build_extractor(feature_node(args.features, args.weights), device)
    scorer = Scorer(extractor)
    rows, data, state, seen = [], None, None, set()
    for path in paths:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt["step"] in seen:
            continue
        seen.add(ckpt["step"])
        if data is None:  # the dataset, the players, the real sets and the reference rows, once
            _, data, state = translator_from_checkpoint(ckpt, device)
            test = data.test_set()
            test_a, test_b = test.a[: args.n], test.b[: args.n]
            scorer.add("A", test_a)
            scorer.add("B", test_b)
            rows.append(scorer.row("copy", test_a, test_b))
            rows.append(scorer.row("floor", data.b[: len(test_b)], data.a[: len(test_a)]))
        else:  # the same run: its later weights into the same players
            state.load_state_dict(ckpt)
        fake_b = translate_all(translator_of(state.players["G_AB"], device), test_a, None, device)
        fake_a = translate_all(translator_of(state.players["G_BA"], device), test_b, None, device)
        rows.append(scorer.row(ckpt["step"], to_uint8(fake_b), to_uint8(fake_a)))
        print(f"{path.name}: step {ckpt['step']}", file=sys.stderr, flush=True)
    a, b = getattr(data, "classes", ("A", "B"))
    print(f"FID ({extractor.name}, {len(test_a)} A and {len(test_b)} B test images)\n")
    print(f"| step | {a} -> {b}: G_AB(test {a}) vs test {b} | {b} -> {a}: G_BA(test {b}) vs {a} |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['step']} | {row['a_to_b']:.2f} | {row['b_to_a']:.2f} |")
    if args.out:
        info = {"features": extractor.name, "n_a": len(test_a), "n_b": len(test_b), "rows": rows}
        args.out.write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""FID benchmark: ganrun's FID against pytorch-fid's on the same images, weights and machine.

    .venv/bin/python scripts/bench_fid.py                       # CIFAR-10 test vs train[:10000], CPU
    .venv/bin/python scripts/bench_fid.py --n 500 --dataset mnist
    .venv/bin/python scripts/bench_fid.py --device cuda --n 10000
    .venv/bin/python scripts/bench_fid.py --reference-precomputed   # only set B is timed

Two sets of N images (the dataset's test split [:N] and train split [:N]) are written as PNG
folders in a temporary directory (not timed). Both tools then compute the FID between them:

  pytorch-fid  calculate_fid_given_paths on the two folders, with its CLI defaults (batch 50,
               2048 dims, num_workers = min(usable CPUs, 8)): PNG decoding, its network, scipy's
               sqrtm.
  ganrun       InceptionFeatures on the in-memory uint8 tensors (as `ganrun eval` gets
               generator samples), feature_stats, frechet_distance.

Both use one state dict: the real FID weights when --weights or $GANRUN_CACHE holds
pt_inception-2015-12-05-6726825d.pth, else seeded random weights (printed; FID values are then
not comparable with published ones, but the two tools must still agree). The state dict is
handed to pytorch-fid in place of its download. Timings include building each network.

With --reference-precomputed the statistics of set A are computed first by each tool (untimed;
an .npz for pytorch-fid), and only set B's features plus the distance are timed: the cost of
one evaluation against cached reference statistics, as during training.

Targets (issue 4): ganrun >= 1.5x faster than pytorch-fid on CPU, >= 3x on a GPU, FIDs equal to
1e-3 relative.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytorch_fid.inception as pfi
import torch
from PIL import Image
from pytorch_fid.fid_score import calculate_fid_given_paths, save_fid_stats

from ganrun.data.cifar import CIFAR10
from ganrun.data.mnist import MNIST
from ganrun.evaluation.features.digit_classifier import cache_dir
from ganrun.evaluation.features.inception import (
    FID_WEIGHTS_NAME,
    InceptionFeatures,
    random_fid_state_dict,
)
from ganrun.evaluation.metrics.frechet import feature_stats, frechet_distance

DATASETS = {"cifar10": CIFAR10, "mnist": MNIST}
# ../shared/data next to the checkout on the dev machines (as tests/conftest.py looks for it)
ROOTS = [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
DEFAULT_ROOT = next((p for p in ROOTS if p.is_dir()), ROOTS[0])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("GANRUN_TEST_DATA", str(DEFAULT_ROOT)))
    p.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10")
    p.add_argument("--n", type=int, default=10000, help="images per set")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=200, help="ganrun's Inception batch")
    p.add_argument("--weights", default=None, help=f"{FID_WEIGHTS_NAME} (default: the cache)")
    p.add_argument("--workers", type=int, default=None, help="pytorch-fid DataLoader workers")
    p.add_argument("--reference-precomputed", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="of the random weights")
    return p.parse_args()


def image_sets(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Set A = test[:n], set B = train[:n], uint8 (n, C, H, W)."""
    cls = DATASETS[args.dataset]
    a = cls(root=args.data_root, split="test").images[: args.n]
    b = cls(root=args.data_root, split="train").images[: args.n]
    if len(a) < args.n:
        raise SystemExit(f"{args.dataset} test split has only {len(a)} images; lower --n")
    return a, b


def write_pngs(images: torch.Tensor, folder: Path) -> None:
    folder.mkdir()
    mode = "L" if images.shape[1] == 1 else "RGB"
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img.squeeze(-1) if mode == "L" else img, mode).save(folder / f"{i:05d}.png")


def weights(args: argparse.Namespace) -> tuple[dict[str, torch.Tensor], str | None, str]:
    """(state dict, path for ganrun or None, description)."""
    path = Path(args.weights) if args.weights else cache_dir() / FID_WEIGHTS_NAME
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state, str(path), f"the real FID weights ({path})"
    return random_fid_state_dict(args.seed), None, f"seeded random weights (seed {args.seed})"


def default_workers() -> int:
    """pytorch-fid's CLI choice: min(usable CPUs, 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(cpus, 8)


def timed(fn, device: str) -> tuple[float, float]:
    """(result, seconds) with the device synchronised around the call."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    set_a, set_b = image_sets(args)
    state, path, described = weights(args)
    workers = default_workers() if args.workers is None else args.workers
    print(
        f"{args.dataset}: {args.n} test vs {args.n} train images {tuple(set_a.shape[1:])}, "
        f"device {args.device}, {torch.get_num_threads()} torch threads, "
        f"pytorch-fid batch 50 / {workers} workers, ganrun batch {args.batch_size}; {described}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        dir_a, dir_b = Path(tmp) / "a", Path(tmp) / "b"
        write_pngs(set_a, dir_a)
        write_pngs(set_b, dir_b)

        def new_extractor() -> InceptionFeatures:
            return InceptionFeatures(path or state, device=args.device, batch_size=args.batch_size)

        spent = {"features": 0.0}  # ganrun's time in the network, to split the total

        def ours_stats(images: torch.Tensor, net: InceptionFeatures):
            features, seconds = timed(lambda: net(images)[0], args.device)
            spent["features"] += seconds
            return feature_stats(features)

        with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state):
            if args.reference_precomputed:
                npz = str(Path(tmp) / "a.npz")
                save_fid_stats([str(dir_a), npz], 50, args.device, 2048, workers)
                ref_a = ours_stats(set_a, new_extractor())
                spent["features"] = 0.0  # set A is not timed in this scenario
                paths = [npz, str(dir_b)]

                def ours() -> float:
                    return frechet_distance(*ref_a, *ours_stats(set_b, new_extractor()))
            else:
                paths = [str(dir_a), str(dir_b)]

                def ours() -> float:
                    net = new_extractor()
                    return frechet_distance(*ours_stats(set_a, net), *ours_stats(set_b, net))

            theirs_fid, theirs_s = timed(
                lambda: calculate_fid_given_paths(paths, 50, args.device, 2048, workers),
                args.device,
            )
        ours_fid, ours_s = timed(ours, args.device)
    timed_what = "set B + distance" if args.reference_precomputed else "both sets + distance"
    rel = abs(ours_fid - theirs_fid) / max(abs(theirs_fid), 1e-12)
    print(f"timed: {timed_what}")
    print(f"pytorch-fid  FID {theirs_fid:.6f}  {theirs_s:8.1f} s")
    print(
        f"ganrun       FID {ours_fid:.6f}  {ours_s:8.1f} s "
        f"({spent['features']:.1f} s Inception features, the rest loading, statistics, distance)"
    )
    print(f"relative FID difference {rel:.2e} (target < 1e-3)")
    print(f"speed-up {theirs_s / ours_s:.2f}x (targets: >= 1.5x CPU, >= 3x GPU)")


if __name__ == "__main__":
    main()

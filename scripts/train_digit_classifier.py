"""Train the MNIST digit classifier used by stacked MNIST's mode counting (and digit FID).

    .venv/bin/python scripts/train_digit_classifier.py                  # ../shared/data
    .venv/bin/python scripts/train_digit_classifier.py --root data --epochs 4 --seed 1

Trains ganrun.evaluation.features.digit_classifier.DigitClassifier on MNIST's 60,000 training images
(random translations of up to 2 px), reports the accuracy on the 10,000 test images and the
wall time, and writes {"state_dict", "test_accuracy", "epochs", "seed", ...} atomically to
--out (default $GANRUN_CACHE/digit_classifier.pt; without GANRUN_CACHE the user cache folder,
~/.cache/ganrun/digit_classifier.pt on Linux (XDG_CACHE_HOME when set)).
Runs on the CPU with 2 threads: about 3 minutes for the default 3 epochs.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from ganrun.atomic_io import atomic_write
from ganrun.data.mnist import MNIST
from ganrun.errors import GanrunError
from ganrun.evaluation.features.digit_classifier import (
    DigitClassifier,
    checkpoint_bytes,
    default_classifier_path,
)


def translate(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image of x (N, 1, H, W) in [-1, 1] by its own (dy, dx) in [-s, s], pad -1."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s), value=-1.0)
    dy, dx = torch.randint(0, 2 * s + 1, (2, n, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (dx + torch.arange(w))[:, None, :]  # (n, 1, w)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def to_float(images: Tensor) -> Tensor:
    """uint8 (N, 1, H, W) -> float in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def train(
    images: Tensor,
    labels: Tensor,
    epochs: int = 3,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    max_shift: int = 2,
    log=None,
) -> DigitClassifier:
    """A DigitClassifier trained on uint8 images (N, 1, 28, 28) with int64 labels (N,).

    Adam with a one-cycle learning rate (warm-up then cosine decay to ~0), label smoothing 0.05.
    The result is in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # weight init and dropout
    model = DigitClassifier()
    x_all = to_float(images)
    n = len(x_all)
    steps_per_epoch = max(1, n // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for j in range(steps_per_epoch):
            idx = perm[j * batch_size : (j + 1) * batch_size]
            x, y = translate(x_all[idx], max_shift, gen), labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            loss_sum += loss.item() * len(y)
        if log is not None:
            log(
                f"epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, "
                f"train accuracy {correct / total:.4f}"
            )
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, labels: Tensor) -> float:
    """Fraction of uint8 images (N, 1, H, W) the model (eval mode) labels correctly."""
    return (model.predict(to_float(images)) == labels).double().mean().item()


def write_checkpoint(
    out, model: DigitClassifier, test_accuracy: float, epochs: int, seed: int, train_seconds: float
) -> None:
    """{"state_dict", "test_accuracy", "epochs", ...} to `out`, atomically; plain types only,
    so that torch.load(weights_only=True) reads it back."""
    info = {
        "test_accuracy": float(test_accuracy),
        "epochs": int(epochs),
        "seed": int(seed),
        "train_seconds": float(train_seconds),
        "torch_version": str(torch.__version__),  # a TorchVersion, which weights_only refuses
    }
    atomic_write(out, checkpoint_bytes(model, **info))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data", help="folder holding MNIST/raw")
    parser.add_argument(
        "--out", default=None, help=f"checkpoint path (default {default_classifier_path()})"
    )
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training set")
    parser.add_argument("--seed", type=int, default=0, help="init, shuffling and augmentation")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    out = args.out or default_classifier_path()
    torch.set_num_threads(args.threads)
    try:
        train_set = MNIST(args.root, "train")
        test_set = MNIST(args.root, "test")
    except GanrunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    model = train(
        train_set.images,
        train_set.labels,
        epochs=args.epochs,
        seed=args.seed,
        log=lambda line: print(line, flush=True),
    )
    train_seconds = time.perf_counter() - start
    test_accuracy = accuracy(model, test_set.images, test_set.labels)
    wall = time.perf_counter() - start
    print(f"test accuracy {test_accuracy:.4f} ({len(test_set)} images)")
    print(f"wall time {wall:.1f} s ({args.epochs} epochs, {args.threads} threads)")
    write_checkpoint(
        out,
        model,
        test_accuracy=test_accuracy,
        epochs=args.epochs,
        seed=args.seed,
        train_seconds=train_seconds,
    )
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

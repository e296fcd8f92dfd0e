"""Two CIFAR-10 classes as unpaired domains (horse -> deer: the shape of horse2zebra, offline).

Domain A is every image of class `a`, domain B every image of class `b`, from the training
split; the test set is the same two classes of `eval_split` (1,000 images each in CIFAR-10's
test split). Class names are CIFAR-10's own (batches.meta: airplane, automobile, bird, cat,
deer, dog, frog, horse, ship, truck).
"""

from __future__ import annotations

import pickle
from pathlib import Path

from ganrun.data.cifar import CIFAR10
from ganrun.data.pair_transforms import SharedCropFlip
from ganrun.data.translation import PairedTensors
from ganrun.errors import GanrunError


def class_names(root: str) -> list[str]:
    """CIFAR-10's label names, read from batches.meta."""
    with open(Path(root) / "cifar-10-batches-py" / "batches.meta", "rb") as f:
        return [str(n) for n in pickle.load(f, encoding="latin1")["label_names"]]


class CIFAR10Pair(PairedTensors):
    """Classes `a` and `b` of CIFAR-10 as unpaired domains A and B."""

    def __init__(
        self,
        a: str = "horse",
        b: str = "deer",
        root: str = "data",
        split: str = "train",
        eval_split: str = "test",
        resolution: int = 32,
        flip: bool = True,
        direction: str = "AtoB",
        download: bool = False,
    ) -> None:
        train = CIFAR10(root, split, resolution, download)  # checks the files first
        names = class_names(root)
        for key, name in (("a", a), ("b", b)):
            if name not in names:
                raise GanrunError(
                    f"dataset.{key}={name} is not a CIFAR-10 class; use one of {', '.join(names)}."
                )
        if a == b:
            raise GanrunError(f"dataset.a and dataset.b are both {a}; pick two classes.")
        ia, ib = names.index(a), names.index(b)
        test = CIFAR10(root, eval_split, resolution, download)
        super().__init__(
            train.images[train.labels == ia],
            train.images[train.labels == ib],
            paired=False,
            direction=direction,
            test_a=test.images[test.labels == ia],
            test_b=test.images[test.labels == ib],
            baselines={"copy": lambda x: x},
            transform=SharedCropFlip(None, flip) if flip else None,
        )
        self.classes = (a, b)

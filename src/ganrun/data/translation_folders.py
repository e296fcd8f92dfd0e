"""Translation data from folders: pix2pix's paired layouts and CycleGAN's unpaired one.

    paired_folder, layout=separate   root/A/<name>, root/B/<name>  (the same names on both sides)
    paired_folder, layout=aligned    root/<name>: one image, A on the left half, B on the right
    unpaired_folder                  root/trainA, root/trainB, root/testA, root/testB

Images are loaded at `load_size` (shorter side resized, centre-cropped; through ImageFolder
and its decoded cache) and training batches take a random `crop` window and a horizontal
flip shared by the two images of a pair (data/pair_transforms.py), pix2pix's 286 -> 256.
The test set is the centre `crop` window, never flipped. Paired folders evaluate on
`test_root` (pix2pix's <dataset>/test), or on the training pairs when none is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganrun.data.folder import EXTENSIONS, ImageFolder
from ganrun.data.pair_transforms import SharedCropFlip, centre_crop
from ganrun.data.translation import PairedTensors
from ganrun.errors import GanrunError

LAYOUTS = ("separate", "aligned")


def decode(
    root: Path, load_size: int, channels: int, num_workers: int, cache: bool
) -> tuple[Tensor, list[str]]:
    """(uint8 (N, C, L, L), names relative to root) of every image under root, sorted."""
    folder = ImageFolder(str(root), load_size, channels, num_workers, "fail", cache)
    names = [str(p.relative_to(root)) for p in folder.files.files]
    return folder.real_images(len(folder)), names


def decode_aligned(root: Path, load_size: int, channels: int) -> tuple[Tensor, Tensor, list[str]]:
    """Side-by-side A|B images: each half resized to load_size x load_size (as pix2pix does)."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise GanrunError(
            f"dataset=paired_folder: no images under dataset.root={root}. With "
            f"dataset.layout=aligned each image holds A on the left half and B on the right."
        )
    a, b = [], []
    for path in files:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            w, h = img.size
            halves = (img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, 2 * (w // 2), h)))
            for half, out in zip(halves, (a, b)):
                half = half.resize((load_size, load_size), Image.BICUBIC)
                array = np.asarray(half, dtype=np.uint8).copy()
                t = torch.from_numpy(array)
                out.append(t[None] if t.dim() == 2 else t.permute(2, 0, 1))
    return torch.stack(a), torch.stack(b), [str(p.relative_to(root)) for p in files]


def read_pairs(
    root: Path, layout: str, load_size: int, channels: int, num_workers: int, cache: bool
) -> tuple[Tensor, Tensor, list[str]]:
    if layout == "aligned":
        return decode_aligned(root, load_size, channels)
    for side in ("A", "B"):
        if not (root / side).is_dir():
            raise GanrunError(
                f"dataset=paired_folder: {root / side} is not a folder. dataset.layout=separate "
                f"wants root/A and root/B with matching file names; for side-by-side A|B images "
                f"pass dataset.layout=aligned."
            )
    a, names_a = decode(root / "A", load_size, channels, num_workers, cache)
    b, names_b = decode(root / "B", load_size, channels, num_workers, cache)
    if names_a != names_b:
        only_a = sorted(set(names_a) - set(names_b))[:3]
        only_b = sorted(set(names_b) - set(names_a))[:3]
        raise GanrunError(
            f"dataset=paired_folder: {root}/A and {root}/B must hold the same file names "
            f"(pairs are matched by name); only in A: {only_a or '-'}, only in B: {only_b or '-'}. "
            f"Rename or remove the unmatched files."
        )
    return a, b, names_a


def check_sizes(load_size: int, crop: int | None) -> None:
    if load_size < 1 or (crop is not None and not 1 <= crop <= load_size):
        raise GanrunError(
            f"dataset.load_size={load_size}, dataset.crop={crop}: the crop must be between 1 "
            f"and load_size px (pix2pix: load_size=286 crop=256); crop=null keeps the whole image."
        )


class PairedFolder(PairedTensors):
    """pix2pix's aligned pairs from disk (see the module doc for the layouts)."""

    def __init__(
        self,
        root: str,
        layout: str = "separate",
        test_root: str | None = None,
        load_size: int = 286,
        crop: int | None = 256,
        flip: bool = True,
        channels: int = 3,
        direction: str = "AtoB",
        num_workers: int = 2,
        cache: bool = True,
    ) -> None:
        if layout not in LAYOUTS:
            raise GanrunError(
                f"dataset.layout={layout!r} is not a layout; use separate (root/A, root/B) or "
                f"aligned (A|B side by side in one image)."
            )
        check_sizes(load_size, crop)
        a, b, names = read_pairs(Path(root), layout, load_size, channels, num_workers, cache)
        if test_root:
            test_a, test_b, test_names = read_pairs(
                Path(test_root), layout, load_size, channels, num_workers, cache
            )
        else:
            test_a, test_b, test_names = a, b, names
        size = crop or load_size
        super().__init__(
            a,
            b,
            names,
            paired=True,
            direction=direction,
            test_a=centre_crop(test_a, size).contiguous(),
            test_b=centre_crop(test_b, size).contiguous(),
            test_names=test_names,
            baselines={"copy": lambda x: x},
            transform=SharedCropFlip(crop, flip),
        )


class UnpairedFolder(PairedTensors):
    """CycleGAN's unpaired domains: root/trainA, trainB (training), testA, testB (evaluation).

    The two domains are drawn independently (`paired=False`); the crop and flip still come from
    one draw per batch row, which is harmless for unrelated images and keeps one code path.
    """

    def __init__(
        self,
        root: str,
        load_size: int = 286,
        crop: int | None = 256,
        flip: bool = True,
        channels: int = 3,
        direction: str = "AtoB",
        num_workers: int = 2,
        cache: bool = True,
    ) -> None:
        check_sizes(load_size, crop)
        folder = Path(root)
        missing = [s for s in ("trainA", "trainB", "testA", "testB") if not (folder / s).is_dir()]
        if missing:
            raise GanrunError(
                f"dataset=unpaired_folder: dataset.root={root} lacks {', '.join(missing)}; "
                f"CycleGAN's layout is root/trainA, root/trainB, root/testA, root/testB."
            )
        parts = {
            s: decode(folder / s, load_size, channels, num_workers, cache)
            for s in ("trainA", "trainB", "testA", "testB")
        }
        size = crop or load_size
        test_names = parts["testB" if direction == "BtoA" else "testA"][1]
        super().__init__(
            parts["trainA"][0],
            parts["trainB"][0],
            paired=False,
            direction=direction,
            test_a=centre_crop(parts["testA"][0], size).contiguous(),
            test_b=centre_crop(parts["testB"][0], size).contiguous(),
            transform=SharedCropFlip(crop, flip),
        )
        self._test.names = test_names

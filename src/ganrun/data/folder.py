"""Any folder of images: decoded once into the cache (ganrun.data.decoded_cache) and read
from that memory-mapped array, or (cache=false) streamed from disk with DataLoader workers.

Images are found recursively; when they sit in more than one sub-folder, the sub-folder
names become class labels (torchvision's ImageFolder convention). Each image is resized
on its shorter side and centre-cropped to `resolution`.

Unreadable files are found when the folder is listed, not hours into a run: each file's
header is parsed and PIL's verify() checks what it can without decoding pixels (every
chunk's CRC in a PNG). `on_error=skip` trains as if those files were not there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from ganrun.data import decoded_cache
from ganrun.data.base import Batch, batch_indices, from_uint8, subset_indices
from ganrun.errors import GanrunError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
ON_ERROR = ("fail", "skip")
WORKER_ERROR = "ganrun.errors.GanrunError: "  # how a DataLoader worker's error reaches us
log = logging.getLogger("ganrun")


def unreadable(path: Path) -> str | None:
    """Why PIL cannot read the image at `path` (None when it can), decoding no pixels."""
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as err:  # noqa: BLE001 - any failure means the file cannot be trained on
        return _reason(err)
    return None


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


@contextmanager
def _worker_errors() -> Iterator[None]:
    """A GanrunError raised in a DataLoader worker arrives wrapped in a traceback; unwrap it
    so the CLI prints the one-line message."""
    try:
        yield
    except GanrunError as err:
        lines = [ln for ln in str(err).splitlines() if ln.startswith(WORKER_ERROR)]
        if not lines:
            raise
        raise GanrunError(lines[-1][len(WORKER_ERROR) :]) from None


class _Files(Dataset):
    def __init__(self, files: list[Path], labels: list[int], resolution: int, mode: str) -> None:
        self.files, self.labels, self.resolution, self.mode = files, labels, resolution, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            with Image.open(self.files[i]) as img:
                img = img.convert(self.mode)
        except Exception as err:  # noqa: BLE001 - e.g. a truncated JPEG, which verify() passes
            raise GanrunError(
                f"dataset=image_folder: {self.files[i]} passed the check when the folder was "
                f"listed but does not decode ({_reason(err)}). Remove it and start again "
                f"(dataset.on_error=skip leaves out only the files the check finds)."
            ) from None
        # imported here: a folder already in the decoded cache trains without torchvision (~2 s)
        from torchvision.transforms import functional as TF

        img = TF.center_crop(TF.resize(img, self.resolution, antialias=True), self.resolution)
        return TF.pil_to_tensor(img), self.labels[i]


class ImageFolder:
    """Streams images from `root`; channels=1 reads grey, 3 reads RGB; on_error: what an
    unreadable file does (fail: name it; skip: leave it out and list it in train.log)."""

    def __init__(
        self,
        root: str,
        resolution: int = 64,
        channels: int = 3,
        num_workers: int = 2,
        on_error: str = "fail",
        cache: bool = True,
    ) -> None:
        if channels not in (1, 3):
            raise GanrunError(
                f"dataset.channels={channels} is not supported; use 1 (grey) or 3 (RGB)."
            )
        if on_error not in ON_ERROR:
            raise GanrunError(
                f"dataset.on_error={on_error} is not supported; use fail (stop, naming the "
                f"unreadable files) or skip (train without them)."
            )
        folder = Path(root)
        files = (
            sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS)
            if folder.is_dir()
            else []
        )
        if not files:
            raise GanrunError(
                f"dataset=image_folder: no images ({', '.join(sorted(EXTENSIONS))}) found under "
                f"dataset.root={root}. Point dataset.root at a folder that holds images."
            )
        self.root = root
        key = decoded_cache.folder_key(folder, files, resolution, channels) if cache else None
        hit = decoded_cache.load(key) if cache else None
        if hit is not None:  # the files were checked when the entry was built
            self.skipped = [(Path(p), why) for p, why in hit[1]["skipped"]]
        else:
            self.skipped = _check_files(files, root, on_error)
        left_out = {path for path, _ in self.skipped}
        files = [p for p in files if p not in left_out]
        parents = sorted({p.parent for p in files})
        self.num_classes = len(parents) if len(parents) > 1 else None
        labels = [parents.index(p.parent) for p in files] if self.num_classes else [0] * len(files)
        self.files = _Files(files, labels, resolution, "L" if channels == 1 else "RGB")
        self.shape: tuple[int, ...] = (channels, resolution, resolution)
        self.num_workers = num_workers
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.images = None  # the decoded array (cache=true), else images are decoded per batch
        if cache:
            meta = {"skipped": [[str(p), why] for p, why in self.skipped], "count": len(files)}
            with _worker_errors():
                self.images = (
                    hit[0] if hit else decoded_cache.build(key, self.files, meta, num_workers)
                )

    def __len__(self) -> int:
        return len(self.files)

    def batches(
        self, batch_size: int, seed: int, start: int = 0, device: str | torch.device = "cpu"
    ) -> Iterator[Batch]:
        self._report_skipped()  # here, not at listing: train.log exists by the first batch
        device = torch.device(device)
        if self.images is not None:
            yield from self._cached_batches(batch_size, seed, start, device)
            return
        loader = DataLoader(
            self.files,
            batch_sampler=batch_indices(len(self), batch_size, seed, start),
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        with _worker_errors():
            for x, y in loader:
                x = from_uint8(x.to(device, non_blocking=True))
                yield x, (y.to(device, non_blocking=True) if self.num_classes else None)

    def _cached_batches(
        self, batch_size: int, seed: int, start: int, device: torch.device
    ) -> Iterator[Batch]:
        """The same batches as the DataLoader path, gathered from the decoded array."""
        for idx in batch_indices(len(self), batch_size, seed, start):
            x = decoded_cache.gather(self.images, idx)
            y = self.labels[idx] if self.num_classes else None
            yield from_uint8(x.to(device)), (None if y is None else y.to(device))

    def preview(self, n: int) -> torch.Tensor:
        if self.images is not None:
            return from_uint8(decoded_cache.gather(self.images, torch.arange(min(n, len(self)))))
        return from_uint8(torch.stack([self.files[i][0] for i in range(min(n, len(self)))]))

    def real_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """n images (all when n >= len) as uint8 (n, C, R, R), for reference statistics."""
        self._report_skipped()
        if self.images is not None:
            return decoded_cache.gather(self.images, subset_indices(len(self), n, seed))
        subset = Subset(self.files, subset_indices(len(self), n, seed).tolist())
        loader = DataLoader(subset, batch_size=256, num_workers=self.num_workers)
        with _worker_errors():
            return torch.cat([x for x, _ in loader])

    def _report_skipped(self) -> None:
        if self.skipped:
            log.warning(
                "dataset.on_error=skip: left out %d unreadable image file(s) under %s: %s",
                len(self.skipped),
                self.root,
                "; ".join(f"{path} ({why})" for path, why in self.skipped),
            )


def _check_files(files: list[Path], root: str, on_error: str) -> list[tuple[Path, str]]:
    """The unreadable files with their reasons (on_error=skip), or a GanrunError naming them."""
    bad = [(path, why) for path in files if (why := unreadable(path)) is not None]
    if bad and on_error == "fail":
        shown = "; ".join(f"{path} ({why})" for path, why in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        them = "it" if len(bad) == 1 else "them"
        raise GanrunError(
            f"dataset=image_folder: {len(bad)} of the {len(files)} image files under "
            f"dataset.root={root} cannot be read: {shown}{more}. Remove {them}, or pass "
            f"dataset.on_error=skip to train without {them} (train.log lists what it skips)."
        )
    if len(bad) == len(files):
        raise GanrunError(
            f"dataset=image_folder: none of the {len(files)} image files under dataset.root="
            f"{root} can be read (e.g. {bad[0][0]}: {bad[0][1]}). Point dataset.root at a "
            f"folder of readable images."
        )
    return bad

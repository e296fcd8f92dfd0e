"""Translation metrics: PSNR, SSIM and L1 against the ground truth, each beside the dataset's
baselines on the same test images, and content accuracy (digits kept, target colour reached).

    evaluator = TranslationEvaluator(data, n=1000)
    values = evaluator(translate)   # {"psnr", "ssim", "l1", "psnr_<baseline>", ...,
                                    #  "digit_acc", "colour_acc", ...}: logged as eval/<name>

Conventions (one scale for all three, so they can be compared across datasets):
- images are compared on [0, 1] (x01 = (x + 1) / 2 of the [-1, 1] tensors), predictions
  clamped to it first, as a saved PNG would be;
- PSNR = 10 log10(1 / MSE) per image (MSE over its pixels and channels), averaged over images;
  an exact image (MSE 0) counts as PSNR_CAP dB (100), not infinity, so one perfect image
  cannot make the mean infinite;
- SSIM is torchmetrics' structural_similarity_index_measure (Gaussian 11 x 11 window, sigma
  1.5, K1 0.01, K2 0.03, data_range 1), per image then averaged; the window shrinks to the
  largest odd size that fits images smaller than 11 px;
- L1 = mean absolute error on [0, 1].

Content (when the test set carries digit labels and the data say they are digits): the
packaged digit classifier's accuracy on the translations (`eval/digit_acc`), read through the
dataset's `digit_view` (colored MNIST: the ink of the digit; grey digits: as they are). Where
the dataset can read colours (`classify_colour`), `eval/colour_acc` is the fraction of
translations whose background is the asked-for domain. Both are also given for every baseline
and, on paired data, for the ground truth (`_target`: the ceiling the readers allow).

Unpaired FID/KID are not computed here: the target domain's test images are the dataset's
`real_images`, so the image metrics of image_evaluator.py run on the translations unchanged
(during_training.translation_evaluator joins both).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ganrun.data.base import from_uint8
from ganrun.data.translation import Baseline, TestSet, Translate

PSNR_CAP = 100.0  # dB for an exact image (MSE 0)
SSIM_WINDOW = 11  # Wang et al. 2004's Gaussian window
BATCH = 256  # images translated at a time


def unit(x: Tensor) -> Tensor:
    """[-1, 1] float (or uint8) images -> float [0, 1], clamped."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} must be equal "
            f"(N, C, H, W) shapes"
        )


def psnr_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """(N,) PSNR in dB on [0, 1], capped at PSNR_CAP for exact images."""
    check_pair(pred, target)
    mse = (unit(pred) - unit(target)).pow(2).flatten(1).mean(1).double()
    cap = torch.full_like(mse, PSNR_CAP)
    return torch.where(
        mse > 0, (10.0 * torch.log10(1.0 / mse.clamp_min(1e-300))).clamp(max=PSNR_CAP), cap
    )


def psnr(pred: Tensor, target: Tensor) -> float:
    return float(psnr_per_image(pred, target).mean())


def ssim_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """(N,) SSIM on [0, 1] (torchmetrics in float32: 10x faster on a CPU than float64, and within
    3e-4 of it, flat images being the worst case; see the module doc for the window)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    check_pair(pred, target)
    side = min(pred.shape[-2:])
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    values = [
        structural_similarity_index_measure(
            unit(p),
            unit(t),
            kernel_size=window,
            sigma=1.5 * window / SSIM_WINDOW,
            data_range=1.0,
            reduction="none",
        )
        for p, t in zip(pred.split(BATCH), target.split(BATCH))
    ]
    return torch.cat(values).float()


def ssim(pred: Tensor, target: Tensor) -> float:
    return float(ssim_per_image(pred, target).mean())


def l1(pred: Tensor, target: Tensor) -> float:
    check_pair(pred, target)
    return float((unit(pred) - unit(target)).abs().mean())


PAIRED_METRICS: dict[str, Callable[[Tensor, Tensor], float]] = {
    "psnr": psnr,
    "ssim": ssim,
    "l1": l1,
}


def translate_all(
    fn: Callable[..., Tensor], a: Tensor, domains: Tensor | None, device: Any, batch: int = BATCH
) -> Tensor:
    """fn over uint8 sources in chunks -> float [-1, 1] predictions on the CPU."""
    out = []
    with torch.no_grad():
        for start in range(0, len(a), batch):
            x = from_uint8(a[start : start + batch].to(device))
            d = None if domains is None else domains[start : start + batch].to(device)
            y = fn(x, d) if d is not None else fn(x)
            out.append(y.detach().float().cpu().clamp(-1.0, 1.0))
    return torch.cat(out)


def on_baseline(baseline: Baseline) -> Callable[..., Tensor]:
    """A baseline takes no target domain: drop it."""
    return lambda x, domain=None: baseline(x)


class TranslationEvaluator:
    """The dataset's test set and baselines, scored once; a translator scored per call."""

    def __init__(
        self,
        data: Any,
        n: int | None = None,
        device: str | torch.device = "cpu",
        classifier: Any = None,
    ) -> None:
        self.data = data
        self.device = torch.device(device)
        self.test: TestSet = data.test_set(n)
        self.digits = bool(getattr(data, "digits", False)) and self.test.a_labels is not None
        self._classifier = classifier
        self.baseline_values: dict[str, float] = {}
        for name, baseline in data.baselines().items():
            pred = translate_all(on_baseline(baseline), self.test.a, None, "cpu")
            for key, value in self.score(pred).items():
                self.baseline_values[f"{key}_{name}"] = value
        if self.test.paired:
            for key, value in self.content(from_uint8(self.test.b)).items():
                self.baseline_values[f"{key}_target"] = value

    def classifier(self) -> Any:
        if self._classifier is None:
            from ganrun.evaluation.features.digit_classifier import load_digit_classifier

            self._classifier = load_digit_classifier()
        return self._classifier

    def content(self, pred: Tensor) -> dict[str, float]:
        """digit_acc and colour_acc of predictions, where the data can read them."""
        out: dict[str, float] = {}
        if self.digits:
            view = getattr(self.data, "digit_view", None)
            grey = view(pred) if view is not None else pred
            if grey.shape[1] == 1:
                digits = self.classifier().predict(grey)
                out["digit_acc"] = float((digits == self.test.a_labels).float().mean())
        colour = getattr(self.data, "classify_colour", None)
        if colour is not None and self.test.b_domains is not None:
            out["colour_acc"] = float((colour(pred) == self.test.b_domains).float().mean())
        return out

    def score(self, pred: Tensor) -> dict[str, float]:
        """Every metric of predictions (N, C, H, W) in [-1, 1] of the test set's sources."""
        out: dict[str, float] = {}
        if self.test.paired and pred.shape == self.test.b.shape:
            target = from_uint8(self.test.b)
            out.update({name: fn(pred, target) for name, fn in PAIRED_METRICS.items()})
        out.update(self.content(pred))
        return out

    def translations(self, translate: Translate) -> Tensor:
        return translate_all(translate, self.test.a, self.test.b_domains, self.device)

    def __call__(self, translate: Translate, pred: Tensor | None = None) -> dict[str, float]:
        """<metric> of the translator (or of `pred`, its translations already made) and
        <metric>_<baseline> beside it, flat names (the loop logs them as eval/<name>);
        non-finite values are left out."""
        pred = self.translations(translate) if pred is None else pred
        values = {**self.score(pred), **self.baseline_values}
        return {k: v for k, v in values.items() if math.isfinite(v)}


def player_device(state: Any) -> torch.device:
    """Where the state's networks live (translations are made there)."""
    for player in state.players.values():
        for p in player.net.parameters():
            return p.device
    return torch.device("cpu")


def translation_evaluator(
    data: Any, method: Any, n: int, images: Any = None
) -> Callable[[Any], dict[str, float]]:
    """state -> the translation metrics of method.translator(state) on the first n test images,
    plus the image metrics (`images`, an ImageEvaluator: FID/KID against the target domain's
    test images) of the same translations. The test set and baselines are scored here, once.

    Runs under isolated_rng() (dropout in a U-Net is off in eval mode, but a translator may
    still draw), so evaluating never changes the run and resume stays bit-exact.
    """
    from ganrun.sampling.images import to_uint8
    from ganrun.training.rng import isolated_rng

    evaluator = TranslationEvaluator(data, n)

    def evaluate(state: Any) -> dict[str, float]:
        evaluator.device = player_device(state)
        with isolated_rng():
            translate = method.translator(state)
            pred = evaluator.translations(translate)
            values = evaluator(translate, pred)
            if images is not None:
                values.update(images(to_uint8(pred).split(1024)).values)
        return values

    return evaluate

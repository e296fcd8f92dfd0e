"""Image metrics during training (eval/fid, ...) and checkpoints/best.pt.

With trainer.eval_every > 0, train() evaluates the method's samples (method=gan: the EMA
generator) on trainer.eval_samples fixed inputs:
the dataset's own metrics (mode counts for ring8, grid25, stacked_mnist) and the image
metrics of the `metrics` node (default [fid]) in the dataset's feature space
(metrics.features: the digit classifier for digit datasets, Inception for natural images).
Both are built before the first step, so a missing weights file or too few samples fail
before any training. The lowest eval/fid is kept as checkpoints/best.pt, and its value
travels in every checkpoint (`best`), so a resumed run keeps comparing against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from ganrun.sampling.images import to_uint8
from ganrun.training.methods.base import Method
from ganrun.training.rng import isolated_rng
from ganrun.training.state import TrainState

if TYPE_CHECKING:  # the metrics stack (scipy, ...) is imported only when a run evaluates
    from ganrun.evaluation.image_evaluator import ImageEvaluator

BEST_METRIC = "fid"  # lower is better; best.pt follows it


def image_evaluator(cfg: DictConfig, data: Any, device: torch.device) -> ImageEvaluator | None:
    """The evaluator of cfg.metrics for this run, or None where image metrics do not apply.

    None when evaluation is off, no metric is chosen, the data are 2-D points (ring8,
    grid25: their mode metrics remain), or no extractor is configured (metrics/features=null).
    """
    node = cfg.get("metrics")
    if cfg.trainer.get("eval_every", 0) <= 0 or node is None or len(data.shape) != 3:
        return None
    from ganrun.evaluation.image_evaluator import ImageEvaluator, build_extractor, build_metrics
    from ganrun.evaluation.imagesets import DatasetImages

    metrics = build_metrics(node)
    if not metrics or node.get("features") is None:
        return None
    n = cfg.trainer.eval_samples
    return ImageEvaluator(
        build_extractor(node.features, device),
        metrics,
        DatasetImages(data, OmegaConf.to_container(cfg.dataset, resolve=True)),
        n,
        tuple(data.shape),
        n,
        fix=(
            f"Raise trainer.eval_samples (now {n}), or pick other metrics "
            f"(metrics=[...]); metrics=[] turns image metrics off."
        ),
    )


def keep_best(
    evaluate: Callable[[TrainState], dict[str, float]],
    state: TrainState,
    save_best: Callable[[], None],
    features: str,
    metric: str = BEST_METRIC,
) -> Callable[[TrainState], dict[str, float]]:
    """evaluate, plus: when `metric` beats state.best, record it in the state and save_best().

    state.best = {"metric": "eval/fid", "value", "step", "features"} goes into every later
    checkpoint, so resuming continues the comparison (and stays bit-exact).
    """

    def evaluate_and_keep(current: TrainState) -> dict[str, float]:
        values = evaluate(current)
        value = values.get(metric)
        if value is None or not math.isfinite(value):
            return values
        if state.best is None or value < state.best["value"]:
            state.best = {
                "metric": f"eval/{metric}",
                "value": float(value),
                "step": state.step,
                "features": features,
            }
            save_best()
        return values

    return evaluate_and_keep


def make_evaluator(
    data: Any,
    method: Method,
    n: int,
    seed: int,
    images: ImageEvaluator | None = None,
) -> Callable[[TrainState], dict[str, float]]:
    """state -> data.evaluate(samples) and the image metrics (`images`) of the method's
    samples on `n` fixed inputs.

    The inputs come from a dedicated torch.Generator seeded with `seed`, never from the
    global RNG, and evaluation runs under isolated_rng(), so evaluating does not change the
    run (resume stays bit-exact).

    A translation method (one with `translator(state)`, data/translation.py) on translation
    data (one with `test_set()`) is scored on the fixed test set instead: PSNR/SSIM/L1 beside
    the baselines, content accuracy, and `images` on its translations
    (evaluation/translation.py).
    """
    if hasattr(method, "translator") and hasattr(data, "test_set"):
        from ganrun.evaluation.translation import translation_evaluator

        return translation_evaluator(data, method, n, images)
    inputs = method.sample_inputs(n, seed)

    def evaluate(state: TrainState) -> dict[str, float]:
        with isolated_rng():
            samples = method.sample(state, inputs, 1024)
            values = data.evaluate(samples) if hasattr(data, "evaluate") else {}
            if images is not None:
                values.update(images(to_uint8(samples).split(1024)).values)
        return values

    return evaluate

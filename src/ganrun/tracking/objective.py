"""The sweep objective: one number from a run's metrics.jsonl, for a sweeper to minimise or maximise.

Hydra's Optuna sweeper needs the task to return a float. train() returns the last logged
metrics; the objective (config key `objective`) names the metric, which way is better and
whether the run is judged by its best evaluation or its last one. Best is the default: a GAN
that reached a good FID and then drifted still found those hyperparameters, and the best
checkpoint keeps that generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ganrun.errors import GanrunError

# which way is better -> the function that picks the best of several values
BETTER: dict[str, Callable[[Iterable[float]], float]] = {"minimize": min, "maximize": max}


@dataclass(frozen=True)
class Objective:
    metric: str  # a metrics.jsonl key, e.g. eval/fid
    direction: str = "minimize"  # a key of BETTER
    reduce: str = "best"  # best | last

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> Objective | None:
        """The configured objective, or None when `objective.metric` is null."""
        if not node or not node.get("metric"):
            return None
        return cls(*(_plain(node[k]) for k in ("metric", "direction", "reduce")))

    def as_dict(self, value: float) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "reduce": self.reduce,
            "value": value,
        }


def _plain(value: Any) -> str:
    """A config value as text: the schema's enums by their value (str() would add the class)."""
    return str(value.value if isinstance(value, Enum) else value)


def check_evaluated(objective: Objective | None, eval_every: int) -> None:
    """An eval/* objective with evaluation off can never be met: say so before training."""
    if objective is not None and objective.metric.startswith("eval/") and eval_every <= 0:
        raise GanrunError(
            f"objective.metric={objective.metric} is an evaluation metric, but "
            f"trainer.eval_every={eval_every} turns evaluation off. Pass trainer.eval_every=<steps> "
            f"(e.g. trainer.eval_every=500), or pick a training metric such as loss/g."
        )


def objective_value(objective: Objective, rows: list[dict[str, Any]]) -> float:
    """The objective over metrics.jsonl rows: the best (or last) finite logged value."""
    values = [r[objective.metric] for r in rows if r.get(objective.metric) is not None]
    if not values:
        logged = sorted({k for r in rows for k in r if k != "step"})
        never_finite = any(objective.metric in r for r in rows)
        reason = "was never finite" if never_finite else "was never logged"
        raise GanrunError(
            f"objective.metric={objective.metric} {reason} in this run, so the sweep has no "
            f"objective. The run logged: {', '.join(logged) or 'nothing'}. Pick one of those "
            f"with objective.metric=<key>, or set up the evaluation that logs "
            f"{objective.metric}."
        )
    if objective.reduce == "last":
        return float(values[-1])
    return float(BETTER[objective.direction](values))

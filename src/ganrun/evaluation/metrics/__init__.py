"""Sample-quality metrics computed from generated samples."""

from ganrun.evaluation.metrics.modes import mode_metrics

__all__ = ["mode_metrics"]

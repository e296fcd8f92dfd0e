"""Reading ganrun.checkpoint/1 (one G, one D, fixed fields; before methods and players).

Upgraded in memory to today's layout, so old runs still sample, evaluate and resume with the
same numbers: the G/D/G_ema/opt_*/scaler_* fields become players "G" and "D", the config
gains `method: gan` and no schedules, and class paths of modules that moved are renamed.
"""

from __future__ import annotations

import re
from typing import Any

FORMAT_V1 = "ganrun.checkpoint/1"

# module paths as /1 configs spelled them (in `_target_` values) -> where they live now
MOVED_MODULES = {
    "ganrun.augment": "ganrun.augment.diffaugment",
    "ganrun.wandb_backend": "ganrun.tracking.wandb_backend",
    "ganrun.metrics.scores": "ganrun.evaluation.metrics.scores",
    "ganrun.metrics.features": "ganrun.evaluation.features.extractor",
    "ganrun.metrics.inception": "ganrun.evaluation.features.inception",
}
_MOVED = re.compile(
    r"^("
    + "|".join(re.escape(m) for m in sorted(MOVED_MODULES, key=len, reverse=True))
    + r")\.(\w+)$"
)
DEFAULT_METHOD = {"_target_": "ganrun.training.methods.gan.GANMethod", "_partial_": True}


def renamed_targets(node: Any) -> Any:
    """The config with every `_target_` of a moved module pointing at its new home."""
    if isinstance(node, dict):
        out = {k: renamed_targets(v) for k, v in node.items()}
        target = out.get("_target_")
        if isinstance(target, str):
            match = _MOVED.match(target)
            if match:
                out["_target_"] = f"{MOVED_MODULES[match.group(1)]}.{match.group(2)}"
        return out
    if isinstance(node, list):
        return [renamed_targets(v) for v in node]
    return node


def upgrade_v1(ckpt: dict[str, Any], new_format: str) -> dict[str, Any]:
    """A /1 checkpoint dict in today's layout (the tensors are the same objects)."""
    config = renamed_targets(ckpt["config"])
    config.setdefault("method", dict(DEFAULT_METHOD))
    config.setdefault("schedule", {})
    players = {
        "G": {
            "net": ckpt["G"],
            "opt": ckpt["opt_g"],
            "scaler": ckpt["scaler_g"],
            "ema": ckpt["G_ema"],
        },
        "D": {"net": ckpt["D"], "opt": ckpt["opt_d"], "scaler": ckpt["scaler_d"]},
    }
    kept = {k: v for k, v in ckpt.items() if k in ("version", "step", "best", "rng", "data")}
    return {
        **kept,
        "format": new_format,
        "upgraded_from": FORMAT_V1,
        "players": players,
        "method": {},
        "schedules": {},
        "config": config,
    }

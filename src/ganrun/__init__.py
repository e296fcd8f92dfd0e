"""ganrun: config-driven GAN experiments.

    import ganrun
    run = ganrun.train(["model=dcgan", "loss=hinge", "trainer.max_steps=500"])  # the run folder
    g = ganrun.load(run)                   # its EMA generator (or a checkpoint / export folder)
    images = g.images(16, seed=3)          # uint8 (16, H, W, C), as `ganrun sample n=16 seed=3`

Both are imported on first use, so `import ganrun` (and the CLI's start) loads no torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load", "train"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from ganrun.sampling.generator import load

        return load
    if name == "train":
        from ganrun.api import train

        return train
    raise AttributeError(f"module 'ganrun' has no attribute {name!r}")

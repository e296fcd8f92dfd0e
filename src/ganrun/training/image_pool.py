"""The image pool of Shrivastava et al. 2017 (used by CycleGAN): D sees a mix of the newest
fakes and older ones, so it does not forget what G did a few hundred steps ago.

    while the pool holds fewer than `size` images: a new fake enters it and is returned as is;
    then, per image: with probability 1/2 return it as is; otherwise return a random stored
                      image and store the new one in its place.

The draws (one uniform and one index per image, always both, so the count of draws is fixed)
come from a torch.Generator of the pool's own, or the global RNG when none is given. Either
way a resumed run repeats them: the generator's state is in `state_dict()`, the global RNG is
in every checkpoint. size=0 turns the pool off (every image is returned as is, no draws).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganrun.errors import GanrunError


class ImagePool:
    def __init__(self, size: int = 50, generator: torch.Generator | None = None) -> None:
        if size < 0:
            raise GanrunError(
                f"method.pool_size={size} must be >= 0 (50: CycleGAN's pool; 0: no pool)."
            )
        self.size = size
        self.generator = generator
        self.images: Tensor | None = None  # (count, C, H, W) stored fakes, detached

    @property
    def count(self) -> int:
        return 0 if self.images is None else self.images.shape[0]

    def query(self, fakes: Tensor) -> Tensor:
        """The batch D should see for `fakes` (same shape; detached); updates the pool."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        if self.images is not None and self.images.device != fakes.device:
            self.images = self.images.to(fakes.device)  # loaded from a checkpoint on the CPU
        out = []
        for image in fakes:
            if self.count < self.size:
                stored = image.unsqueeze(0).clone()
                self.images = stored if self.images is None else torch.cat([self.images, stored])
                out.append(image)
                continue
            swap = torch.rand((), generator=self.generator).item() < 0.5
            index = int(torch.randint(self.size, (), generator=self.generator))
            if swap:
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"images": self.images}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        images = state.get("images")
        self.images = None if images is None else images.clone()
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])

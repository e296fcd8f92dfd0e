"""TrainState: the named players, the step, the best metric, and the stateful components
(the method's own state, the schedules) whose state_dicts travel in every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ganrun.training.players import Player


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    players: dict[str, Player]
    step: int = 0
    best: dict[str, Any] | None = None  # {"metric", "value", "step", "features"} of best.pt
    # name -> object with state_dict/load_state_dict: "method" (ADA's p, image pools, ...),
    # "schedules" (their base values); saved under their names
    components: dict[str, Stateful] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return {
            "players": {name: p.state_dict() for name, p in self.players.items()},
            "step": self.step,
            "best": self.best,
            **{name: part.state_dict() for name, part in self.components.items()},
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        for name, player in self.players.items():
            player.load_state_dict(ckpt["players"][name])
        for name, part in self.components.items():
            part.load_state_dict(ckpt.get(name, {}))
        self.step, self.best = int(ckpt["step"]), ckpt["best"]

"""Checkpoint component "augment": the state of the players' input augmentations (ADA's p).

A checkpoint keeps each player's plain network (players.unwrap drops the augmentation
wrapper, so D's weights load into any D), which leaves an augmentation's own buffers out.
This component carries them beside the players, so a resume continues ADA's p trace bit for
bit. It exists only when some augmentation has state: runs without augment, or with the
stateless DiffAugment, write the same checkpoints as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn


class AugmentStates:
    """state_dict / load_state_dict over {player name: its augmentation module}."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.modules = dict(modules)

    def state_dict(self) -> dict[str, Any]:
        return {name: module.state_dict() for name, module in self.modules.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A player missing from `state` (a checkpoint written without this augmentation)
        keeps its fresh state: p starts from the config."""
        for name, module in self.modules.items():
            if name in state:
                module.load_state_dict(state[name])


def augment_components(players: Mapping[str, Any]) -> dict[str, AugmentStates]:
    """{"augment": AugmentStates} over the players whose network (before any compile or DDP
    wrapper) is augmented with state; {} when none is."""
    stateful = {}
    for name, player in players.items():
        augment = getattr(player.net, "augment", None)
        if isinstance(augment, nn.Module) and augment.state_dict():
            stateful[name] = augment
    return {"augment": AugmentStates(stateful)} if stateful else {}

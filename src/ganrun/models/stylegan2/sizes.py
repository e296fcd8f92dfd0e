"""Which images StyleGAN2 builds, and how wide each resolution is (shared by G and D)."""

from __future__ import annotations

from ganrun.errors import GanrunError
from ganrun.models.layers import image_shape

RESOLUTIONS = tuple(2**i for i in range(4, 11))  # 16 .. 1024


def stylegan2_shape(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, resolution) of the data, or a clear error for what StyleGAN2 cannot build."""
    channels, resolution = image_shape(data_shape, "stylegan2")
    if resolution not in RESOLUTIONS or channels not in (1, 3):
        raise GanrunError(
            f"model=stylegan2 builds 1- or 3-channel images at a power-of-two resolution from "
            f"16 to 1024; the dataset gives {tuple(data_shape)}. Set dataset.resolution to one "
            f"of {list(RESOLUTIONS)} (e.g. dataset.resolution=32; MNIST's 28 needs 32)."
        )
    return channels, resolution


def block_resolutions(resolution: int) -> list[int]:
    """4, 8, ..., resolution: one synthesis block (and one D block above 4) per size."""
    return [2**i for i in range(2, resolution.bit_length())]


def channels_at(resolution: int, channel_base: int, width: int) -> int:
    """NVlabs' min(channel_base / resolution, channel_max), with `width` as channel_max: the
    wide low resolutions are capped, so width=8 makes every layer 8 channels wide."""
    return max(1, min(channel_base // resolution, width))

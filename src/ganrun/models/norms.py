"""The normalisation choice of the translation networks (pix2pix: batch; CycleGAN and
StarGAN: instance), one definition for the U-Net, the ResNet translator and PatchGAN."""

from __future__ import annotations

from torch import nn

from ganrun.errors import GanrunError

NORMS = ("batch", "instance", "none")


def check_norm(norm: str, key: str) -> str:
    if norm not in NORMS:
        raise GanrunError(
            f"{key}.norm={norm!r} is not one of {', '.join(NORMS)}. Pick one of them."
        )
    return norm


def norm_layer(norm: str, channels: int) -> nn.Module:
    """BatchNorm2d, InstanceNorm2d without affine or running statistics (pix2pix/CycleGAN's
    `--norm instance`), or nothing."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def conv_bias(norm: str) -> bool:
    """A conv before BatchNorm needs no bias (BatchNorm's shift replaces it); before instance
    norm the reference code keeps it (it is cancelled all the same, but harmless)."""
    return norm != "batch"

"""ADA's colour ops (Karras et al. 2020, the 'c' of 'bgc') as one 4x4 colour matrix per image.

Each op is an affine map of the RGB value (homogeneous 4-vectors), drawn for every image and
applied with probability p x its multiplier; the maps are multiplied into one matrix, so an
image is recoloured once. Luma is the axis v = (1, 1, 1) / sqrt(3): luma flip mirrors along
it, hue rotates around it, saturation scales away from it. Values are those of images in
[-1, 1], so contrast and luma flip pivot on 0, the mid grey.

One-channel images are grey: a grey value x is the RGB point (x, x, x), on the luma axis, which
hue rotation and saturation leave exactly where it is. For them those two ops are skipped
(no draws), and brightness, contrast and luma flip act on x itself (luma flip: x -> -x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ganrun.errors import GanrunError


@dataclass(frozen=True)
class ColorStrengths:
    """Probability multipliers (0 disables an op) and strengths of the colour ops."""

    brightness: float = 1.0
    contrast: float = 1.0
    lumaflip: float = 1.0
    hue: float = 1.0
    saturation: float = 1.0
    brightness_std: float = 0.2  # image units
    contrast_std: float = 0.5  # log2 units
    hue_max: float = 1.0  # units of pi
    saturation_std: float = 1.0  # log2 units


def _gate(value: Tensor, identity: float, prob: Tensor) -> Tensor:
    keep = torch.rand(value.shape[0], device=value.device) < prob
    return torch.where(keep, value, torch.full_like(value, identity))


def _eye(n: int, device: torch.device) -> Tensor:
    return torch.eye(4, device=device).repeat(n, 1, 1)


def luma_axis(device: torch.device) -> Tensor:
    """v v^T for v = (1, 1, 1, 0) / sqrt(3): the projection onto luma, [4, 4]."""
    v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)
    return torch.outer(v, v)


def brightness(b: Tensor) -> Tensor:
    """Adds b to every channel."""
    m = _eye(b.shape[0], b.device)
    m[:, :3, 3] = b[:, None]
    return m


def contrast(c: Tensor) -> Tensor:
    """Scales every channel by c (about 0)."""
    m = _eye(c.shape[0], c.device)
    m[:, [0, 1, 2], [0, 1, 2]] = c[:, None]
    return m


def lumaflip(i: Tensor) -> Tensor:
    """Householder reflection along the luma axis when i = 1 (luma negated, chroma kept)."""
    return _eye(i.shape[0], i.device) - 2 * luma_axis(i.device) * i[:, None, None]


def hue(theta: Tensor) -> Tensor:
    """Rotation by theta about the luma axis (Rodrigues' formula)."""
    v = torch.ones(3, device=theta.device) / math.sqrt(3)
    # [v]x, the cross-product matrix of v (all of v's components are 1/sqrt(3))
    cross = torch.tensor([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=theta.device) * v[0]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    m = _eye(theta.shape[0], theta.device)
    m[:, :3, :3] = c * torch.eye(3, device=theta.device) + s * cross
    m[:, :3, :3] += (1 - c) * torch.outer(v, v)
    return m


def saturation(s: Tensor) -> Tensor:
    """Scales the chroma (the part off the luma axis) by s: I + (s - 1)(I - v v^T), which is
    exactly I at s = 1."""
    off_axis = torch.eye(4, device=s.device) - luma_axis(s.device)
    off_axis[3, 3] = 0.0  # the homogeneous coordinate stays 1
    return _eye(s.shape[0], s.device) + (s - 1)[:, None, None] * off_axis


def matrix(n: int, channels: int, p: Tensor, s: ColorStrengths) -> Tensor:
    """[n, 4, 4]: the composed colour map, ops in the paper's order (brightness first)."""
    dev = p.device
    m = brightness(_gate(torch.randn(n, device=dev) * s.brightness_std, 0.0, p * s.brightness))
    c = _gate(torch.exp2(torch.randn(n, device=dev) * s.contrast_std), 1.0, p * s.contrast)
    m = contrast(c) @ m
    flip = _gate(torch.floor(torch.rand(n, device=dev) * 2), 0.0, p * s.lumaflip)
    m = lumaflip(flip) @ m
    if channels == 3:  # grey images: both are the identity (see the module docstring)
        theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * s.hue_max
        m = hue(_gate(theta, 0.0, p * s.hue)) @ m
        sat = torch.exp2(torch.randn(n, device=dev) * s.saturation_std)
        m = saturation(_gate(sat, 1.0, p * s.saturation)) @ m
    return m


def apply(x: Tensor, m: Tensor) -> Tensor:
    """x [n, c, h, w] mapped by m [n, 4, 4]; c = 3 (RGB) or 1 (grey: the mean of the mapped
    (x, x, x), i.e. x times the rows' mean gain plus their mean offset)."""
    n, c, h, w = x.shape
    m = m.to(x.dtype)
    if c == 3:
        out = m[:, :3, :3] @ x.reshape(n, 3, h * w) + m[:, :3, 3:]
        return out.reshape(n, 3, h, w)
    gain = m[:, :3, :3].sum(2).mean(1).view(n, 1, 1, 1)
    offset = m[:, :3, 3].mean(1).view(n, 1, 1, 1)
    return x * gain + offset


def check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise GanrunError(
            f"augment=ada's colour ops work on 1- or 3-channel images; these have {channels}. "
            "Turn them off with augment.brightness=0 augment.contrast=0 augment.lumaflip=0 "
            "augment.hue=0 augment.saturation=0, or use augment=diffaugment."
        )


def augment(x: Tensor, p: Tensor, s: ColorStrengths) -> Tensor:
    """x with ADA's colour ops at probability p (a 0-dim tensor)."""
    check_channels(x.shape[1])
    return apply(x, matrix(x.shape[0], x.shape[1], p, s))

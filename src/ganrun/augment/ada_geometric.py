"""ADA's geometric ops (Karras et al. 2020, the 'bg' of 'bgc') as one affine warp per image.

Every op draws its random parameter for every image, whether or not it is applied (so the
number of RNG draws does not depend on p, and a resume replays the same stream), and is
applied to an image with probability p x its multiplier. The ops' inverse matrices are
multiplied into one 3x3 matrix per image, so the image is resampled once, not seven times:
fewer interpolation blurs, and one grid_sample to differentiate (twice, for R1).

Coordinates are pixels measured from the image centre (x right, y down), so rotations and
scalings turn about the centre, as in the paper. NVlabs resamples with a 2x wavelet-filtered
upsampling and pads by reflection; here the warp is plain bilinear `grid_sample` with
reflection padding, in plain PyTorch (no custom op) — a little more aliasing at strong
scalings, the same transform distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class GeometricStrengths:
    """Probability multipliers (0 disables an op) and strengths of the geometric ops."""

    xflip: float = 1.0
    rotate90: float = 1.0
    xint: float = 1.0
    scale: float = 1.0
    rotate: float = 1.0
    aniso: float = 1.0
    xfrac: float = 1.0
    xint_max: float = 0.125  # fraction of the image size
    scale_std: float = 0.2  # log2 units
    rotate_max: float = 1.0  # units of pi
    aniso_std: float = 0.2  # log2 units
    xfrac_std: float = 0.125  # fraction of the image size


@dataclass
class GeometricDraw:
    """One image batch's op parameters after gating (an op not applied holds its identity
    value): what `inverse_matrix` composes. Shapes [n] or [n, 2] (x, y)."""

    flip: Tensor  # 0 or 1: mirror x
    quarter_turns: Tensor  # 0..3: rotate by k x 90 degrees
    shift_int: Tensor  # [n, 2] whole pixels
    scale: Tensor  # isotropic factor
    theta_pre: Tensor  # radians, before the anisotropic scaling
    aniso: Tensor  # x scaled by a, y by 1/a
    theta_post: Tensor  # radians, after it
    shift_frac: Tensor  # [n, 2] pixels (fractional)


def translate(tx: Tensor, ty: Tensor) -> Tensor:
    m = torch.eye(3, dtype=tx.dtype, device=tx.device).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def scale(sx: Tensor, sy: Tensor) -> Tensor:
    m = torch.eye(3, dtype=sx.dtype, device=sx.device).repeat(sx.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotation(c: Tensor, s: Tensor) -> Tensor:
    m = torch.eye(3, dtype=c.dtype, device=c.device).repeat(c.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def rotate(theta: Tensor) -> Tensor:
    """By theta radians; positive turns x (right) towards y (down): clockwise on screen."""
    return _rotation(torch.cos(theta), torch.sin(theta))


def quarter_turns(k: Tensor) -> Tensor:
    """By k x 90 degrees with exact 0/+-1 entries (cos(pi/2) is not 0 in floating point), so a
    quarter turn moves pixels without interpolation error."""
    k = k.long() % 4
    c = torch.tensor([1.0, 0.0, -1.0, 0.0], device=k.device)[k]
    s = torch.tensor([0.0, 1.0, 0.0, -1.0], device=k.device)[k]
    return _rotation(c, s)


def inverse_matrix(d: GeometricDraw) -> Tensor:
    """[n, 3, 3]: output pixel -> input pixel, i.e. the inverse of op_8 . ... . op_1 (op_1 the
    flip, applied first), built as op_1^-1 @ op_2^-1 @ ... @ op_8^-1."""
    ops = (
        scale(1 - 2 * d.flip, torch.ones_like(d.flip)),  # a flip is its own inverse
        quarter_turns(-d.quarter_turns),
        translate(-d.shift_int[:, 0], -d.shift_int[:, 1]),
        scale(1 / d.scale, 1 / d.scale),
        rotate(-d.theta_pre),
        scale(1 / d.aniso, d.aniso),
        rotate(-d.theta_post),
        translate(-d.shift_frac[:, 0], -d.shift_frac[:, 1]),
    )
    out = ops[0]
    for m in ops[1:]:
        out = out @ m
    return out


def _gate(value: Tensor, identity: float, prob: Tensor) -> Tensor:
    """value where a uniform draw falls under prob, else the op's identity value."""
    keep = torch.rand(value.shape[0], device=value.device) < prob
    keep = keep.view(-1, *([1] * (value.dim() - 1)))
    return torch.where(keep, value, torch.full_like(value, identity))


def draw(n: int, height: int, width: int, p: Tensor, s: GeometricStrengths) -> GeometricDraw:
    """Random op parameters for n images of height x width, each op kept with prob p x mult.

    The arbitrary rotation runs twice (around the anisotropic scaling), each with probability
    1 - sqrt(1 - p x mult), so that at least one of them happens with probability p x mult.
    """
    dev = p.device
    size = torch.tensor([width, height], dtype=torch.float32, device=dev)
    flip = _gate(torch.floor(torch.rand(n, device=dev) * 2), 0.0, p * s.xflip)
    turns = _gate(torch.floor(torch.rand(n, device=dev) * 4), 0.0, p * s.rotate90)
    shift = (torch.rand(n, 2, device=dev) * 2 - 1) * s.xint_max
    shift_int = _gate(torch.round(shift * size), 0.0, p * s.xint)
    iso = _gate(torch.exp2(torch.randn(n, device=dev) * s.scale_std), 1.0, p * s.scale)
    p_rot = 1 - torch.sqrt((1 - p * s.rotate).clamp(min=0))
    theta_pre = _gate((torch.rand(n, device=dev) * 2 - 1) * math.pi * s.rotate_max, 0.0, p_rot)
    aniso = _gate(torch.exp2(torch.randn(n, device=dev) * s.aniso_std), 1.0, p * s.aniso)
    theta_post = _gate((torch.rand(n, device=dev) * 2 - 1) * math.pi * s.rotate_max, 0.0, p_rot)
    frac = _gate(torch.randn(n, 2, device=dev) * s.xfrac_std * size, 0.0, p * s.xfrac)
    return GeometricDraw(flip, turns, shift_int, iso, theta_pre, aniso, theta_post, frac)


def warp(x: Tensor, g_inv: Tensor) -> Tensor:
    """x resampled at g_inv @ (output pixel), bilinear, reflection padding; images whose
    matrix is exactly the identity are returned untouched (so p=0 is exactly the identity)."""
    n, _, h, w = x.shape
    g_inv = g_inv.to(x.dtype)
    # centred pixels -> grid_sample's [-1, 1] (align_corners=False: pixel edges at +-1)
    to_unit = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], dtype=x.dtype, device=x.device))
    from_unit = torch.diag(torch.tensor([w / 2, h / 2, 1.0], dtype=x.dtype, device=x.device))
    theta = (to_unit @ g_inv @ from_unit)[:, :2, :]
    grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    eye = torch.eye(3, dtype=g_inv.dtype, device=g_inv.device)
    unchanged = (g_inv == eye).flatten(1).all(1).view(n, 1, 1, 1)
    return torch.where(unchanged, x, out)


def augment(x: Tensor, p: Tensor, s: GeometricStrengths) -> Tensor:
    """x [n, c, h, w] with ADA's geometric ops at probability p (a 0-dim tensor)."""
    n, _, h, w = x.shape
    return warp(x, inverse_matrix(draw(n, h, w, p, s)))

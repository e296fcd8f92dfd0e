"""PatchGAN discriminator (Isola et al. 2017, pix2pix): a logit per overlapping patch.

Strided 4x4 convs (the first without BatchNorm), then two stride-1 4x4 convs: at 256x256
with depth 3 it is pix2pix's 70x70 PatchGAN with a 30x30 logit map. D returns the map
(B, h, w); the objectives average over all entries, so every patch is judged. A conditional
D (pix2pix) is this network on cat(source, target): data_shape then holds the summed channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganrun.errors import GanrunError
from ganrun.models.layers import dcgan_init, dropout_layers, image_shape
from ganrun.models.norms import check_norm, conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 64,
        depth: int | None = None,
        slope: float = 0.2,
        dropout: float = 0.0,
        norm: str = "batch",  # batch | instance | none (CycleGAN's D: instance)
    ) -> None:
        super().__init__()
        channels, resolution = image_shape(data_shape, "patchgan")
        check_norm(norm, "discriminator")
        most = int(math.log2(resolution)) - 2  # keeps the logit map at least 2x2
        depth = min(3, most) if depth is None else depth
        if not 1 <= depth <= most:
            raise GanrunError(
                f"model.discriminator.depth={depth} does not fit {resolution}x{resolution} "
                f"images: PatchGAN needs 1 <= depth <= {most} here. Lower the depth or use "
                f"depth=null (automatic)."
            )
        widths = [width * min(2**i, 8) for i in range(depth + 1)]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1),
            nn.LeakyReLU(slope, True),
            *dropout_layers(dropout),
        ]
        for i in range(1, depth + 1):
            stride = 2 if i < depth else 1
            layers += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride, 1, bias=conv_bias(norm)),
                norm_layer(norm, widths[i]),
                nn.LeakyReLU(slope, True),
                *dropout_layers(dropout),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

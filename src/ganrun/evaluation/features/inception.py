"""The FID Inception-v3: pool features (2048-d) and logits, equal to pytorch-fid's.

FID numbers are only comparable between papers when they come from one network: the TF
Inception graph of 2015-12-05 that the original FID code used, ported to PyTorch as
`pt_inception-2015-12-05-6726825d.pth` (pytorch-fid's release). That graph differs from
torchvision's Inception3 in its blocks (the FID blocks below): average pools that do not count
the zero padding, a max pool in the last block, 1008 classes. The module names here are those
of torchvision's Inception3, so the file's state dict loads with strict=True.

Input handling is pytorch-fid's on PNG files: uint8 -> /255 -> bilinear resize to 299x299
(align_corners=False, no antialias) -> 2x - 1. Float images in [-1, 1] are first quantised to
uint8 as saving them as PNG would (ganrun.sampling.images.to_uint8), so features of in-memory samples
equal those of the same samples written to disk.

Speed (the network runs once per evaluated image): BatchNorm is folded into the preceding
convolution when the weights are loaded (the FID network is inference only; the folded
float64 arithmetic keeps features within 1e-5 of the unfolded network), activations are
channels_last (faster oneDNN/cuDNN kernels), and the work is batched under inference_mode.
TF32 is turned off around the forward on CUDA so features stay equal to the fp32 reference.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.cache import cache_dir
from ganrun.errors import GanrunError, first_line
from ganrun.sampling.images import to_uint8

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME
)
INPUT_SIZE = 299  # the TF graph's input resolution
POOL_DIMS = 2048
NUM_CLASSES = 1008  # the 2015 graph's 1000 ImageNet classes + 8 unused


class BasicConv2d(nn.Module):
    """conv (no bias) + BatchNorm (eps 1e-3, as the TF graph) + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the (inference-mode) BatchNorm into the conv: one kernel and one pass less.

        conv(x) * s + (beta - mean * s) with s = gamma / sqrt(var + eps), computed in float64.
        """
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm2d):
            return  # already folded
        conv = self.conv
        scale = bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()
        folded = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            bias=True,
        ).to(conv.weight.device)
        folded.weight.copy_(conv.weight.double() * scale[:, None, None, None])
        folded.bias.copy_(bn.bias.double() - bn.running_mean.double() * scale)
        self.conv, self.bn = folded, nn.Identity()


def avg_pool_3x3(x: Tensor) -> Tensor:
    """TF's 3x3 average pool: the zero padding is not counted in the mean (an FID patch)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def max_pool_3x3(x: Tensor) -> Tensor:
    """The max pool the TF graph uses in its last block where the paper has an average pool."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled branches (FIDInceptionA)."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35 -> 17 reduction: strided 3x3, strided double 3x3 and max-pool branches."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (FIDInceptionC)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            b7dbl = conv(b7dbl)
        b7dbl = self.branch7x7dbl_5(b7dbl)
        bp = self.branch_pool(avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), b7, b7dbl, bp], 1)


class InceptionD(nn.Module):
    """17 -> 8 reduction: strided 3x3, strided 7x7-then-3x3 and max-pool branches."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches; `pool` is the FID patch of each instance
    (average without padding in Mixed_7b = FIDInceptionE_1, max in Mixed_7c = FIDInceptionE_2).
    """

    def __init__(self, in_channels: int, pool: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(b3dbl),
                self.branch3x3dbl_3b(b3dbl),
                self.branch_pool(self.pool(x)),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 graph with torchvision's module names (no aux head).

    forward(x) takes images already resized to 299x299 and scaled to [-1, 1] and returns the
    2048-d average-pool features and the 1008 logits without the fc bias: the original
    Inception Score code (and torch-fidelity's default, 'logits_unbiased') multiplies the pool
    features by the softmax weights only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool=avg_pool_3x3)
        self.Mixed_7c = InceptionE(2048, pool=max_pool_3x3)
        self.fc = nn.Linear(POOL_DIMS, NUM_CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        pool = x.mean(dim=(2, 3))
        return pool, pool @ self.fc.weight.T

    def fold_batchnorm(self) -> FIDInceptionV3:
        """Fold every BatchNorm into its conv (inference only; the state dict keys change)."""
        for module in self.modules():
            if isinstance(module, BasicConv2d):
                module.fold_batchnorm()
        return self


def _download(url: str, dest: Path) -> bool:
    """Fetch url into dest atomically; False when offline (no partial file is left)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError):
        tmp.unlink(missing_ok=True)
        return False
    tmp.replace(dest)
    return True


def random_fid_state_dict(seed: int = 0) -> dict[str, Tensor]:
    """A seeded random state dict with the keys of the real weights file.

    For equivalence tests and benchmarks where the real file is absent (load the same dict into
    pytorch-fid's network and ours). He-scaled convolutions and BatchNorm near identity keep
    the activations' scale through the ~95 layers: torchvision's default init (and the zero
    BatchNorm statistics of a fresh module) give features that are ~1e-8 and identical for
    every image, which would make any comparison pass.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in FIDInceptionV3().state_dict().items():
        shape = value.shape
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith(("bn.weight", "bn.running_var")):
            state[key] = 0.75 + 0.5 * torch.rand(shape, generator=gen)
        elif key.endswith(("bn.bias", "bn.running_mean")):
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        elif key == "fc.weight":
            state[key] = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        else:  # fc.bias, bn.num_batches_tracked
            state[key] = torch.zeros_like(value)
    return state


def fid_weights_path(weights: str | None) -> Path:
    """The FID Inception weights file: `weights` when given, else the cache, else a download.

    A given path must exist (no silent fallback to other weights: FID values are only
    comparable with one network). Offline without the file: a GanrunError naming the file, its
    public URL, and where to put it.
    """
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise GanrunError(
                f"metrics.fid.weights={weights}: no such file. Download {FID_WEIGHTS_NAME} from "
                f"{FID_WEIGHTS_URL} and point metrics.fid.weights at it, or leave the key empty "
                f"to use the cache folder ({cache_dir() / FID_WEIGHTS_NAME})."
            )
        return path
    path = cache_dir() / FID_WEIGHTS_NAME
    if path.is_file() or _download(FID_WEIGHTS_URL, path):
        return path
    raise GanrunError(
        f"the FID Inception weights {FID_WEIGHTS_NAME} are not in the cache ({path}) and could "
        f"not be downloaded (offline?). Download them on a machine with internet from "
        f"{FID_WEIGHTS_URL} and copy the file to {path} (the folder is $GANRUN_CACHE), or set "
        f"metrics.fid.weights=/path/to/{FID_WEIGHTS_NAME}."
    )


def load_fid_inception(weights: str | Path | dict[str, Tensor]) -> FIDInceptionV3:
    """FIDInceptionV3 with a state dict (a .pth path or the dict itself), strict, eval mode."""
    state = weights
    if not isinstance(weights, dict):
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated download, another format
            raise GanrunError(
                f"could not read the FID Inception weights {weights} ({first_line(err, 200)}). "
                f"Delete the file and download {FID_WEIGHTS_NAME} again from "
                f"{FID_WEIGHTS_URL}."
            ) from None
    net = FIDInceptionV3()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise GanrunError(
            f"the weights {weights if not isinstance(weights, dict) else '(state dict)'} are not "
            f"the FID Inception-v3 ({str(err).splitlines()[0][:200]}); use {FID_WEIGHTS_NAME} "
            f"from {FID_WEIGHTS_URL}."
        ) from None
    return net.eval().requires_grad_(False)


def check_images(images: Tensor) -> None:
    """GanrunError unless images are (N, C, H, W), C in {1, 3}, uint8 or floating point."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise GanrunError(
            f"the Inception network needs images (N, C, H, W) with C = 1 or 3, got shape "
            f"{tuple(images.shape)}; stack samples into one batch (grey images are repeated "
            f"to RGB, other channel counts have no FID definition)."
        )
    if not (images.is_floating_point() or images.dtype == torch.uint8):
        raise GanrunError(
            f"the Inception network needs uint8 images in [0, 255] or float images in [-1, 1], "
            f"got dtype {images.dtype}."
        )


def prepare_images(images: Tensor) -> Tensor:
    """uint8 (N, C, H, W) or float in [-1, 1] -> float (N, 3, 299, 299) in [-1, 1], as pytorch-fid.

    pytorch-fid reads PNG files as uint8, divides by 255, resizes (bilinear, align_corners
    False, no antialias) and rescales to [-1, 1]; float samples are quantised to the PNG
    levels first so in-memory and on-disk evaluation agree.
    """
    check_images(images)
    if images.is_floating_point():
        images = to_uint8(images).to(images.device)
    x = images.float().div(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return (2 * x - 1).contiguous(memory_format=torch.channels_last)


class InceptionFeatures(nn.Module):
    """Images in, (pool features (N, 2048), logits (N, 1008)) out, in batches, on `device`.

    `weights`: a path to pt_inception-2015-12-05-6726825d.pth, None for the cache/download
    (fid_weights_path), or an in-memory state dict with the same keys (tests and benchmarks
    use seeded random weights this way).
    """

    name = "inception-v3-fid"  # recorded next to every result: FIDs are only comparable per network
    dims = POOL_DIMS

    def __init__(
        self,
        weights: str | dict[str, Tensor] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 200,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise GanrunError(f"Inception batch_size must be >= 1, got {batch_size}.")
        # weights_path: the file behind the features, for cache keys (None for a state dict)
        self.weights_path = None if isinstance(weights, dict) else fid_weights_path(weights)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = load_fid_inception(
            weights if self.weights_path is None else self.weights_path
        ).fold_batchnorm()
        self.net.to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images: uint8 (N,C,H,W) in [0,255] or float in [-1,1]; C in {1,3} (1 is repeated).
        Returns (pool (N,2048) float32, logits (N,1008) float32), on `device`."""
        check_images(images)
        if images.shape[0] == 0:
            raise GanrunError("the Inception network got 0 images; evaluate on at least 2.")
        pools, logits = [], []
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            for batch in images.split(self.batch_size):
                pool, logit = self.net(prepare_images(batch.to(self.device)))
                pools.append(pool.float())
                logits.append(logit.float())
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        return torch.cat(pools), torch.cat(logits)

"""Every YAML in the config groups composes with debug=smoke and builds; the schema rejects typos.

The option lists are globbed from conf/<group>/*.yaml at collection time, so a new file is
composed, instantiated (and, for models, stepped) without anyone adding it here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, compose_cfg, needs_cifar10, needs_mnist
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from ganrun.build import build_data, build_loss, build_state, check_trainer, resolve_device
from ganrun.config import CONF
from ganrun.errors import GanrunError
from ganrun.training.amp import autocast_factory
from ganrun.training.methods.gan import MicroBatch, d_step, g_step

GROUPS = (
    "model",
    "loss",
    "dataset",
    "optimizer",
    "trainer",
    "logger",
    "augment",
    "conditioning",
    "experiment",
    "debug",
    "metrics",
    "method",  # each option's contract: test_methods.py
    "schedule",  # each option built and applied: test_schedules.py
)
SWEEP_GROUPS = ("hparams_search", "hydra/launcher")  # each option is built in test_sweep.py
ROOT = f"dataset.root='{SHARED_DATA}'"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# Per-option extra overrides and skip marks, for the options that need files on disk.
DATASET_NEEDS = {
    "mnist": ([ROOT], needs_mnist),
    "stacked_mnist": ([ROOT, "dataset.size=1000"], needs_mnist),
    "cifar10": ([ROOT], needs_cifar10),
    # translation data (issue 12): the derived tasks read their source's test split (fast)
    **{
        task: (
            [ROOT.replace("dataset.root", "dataset.source.root"), "dataset.source.split=test"],
            mark,
        )
        for task, mark in (
            ("colorization", needs_cifar10),
            ("superres", needs_cifar10),
            ("inpainting", needs_cifar10),
            ("edges", needs_mnist),
        )
    },
    "cifar10_pair": ([ROOT, "dataset.split=test"], needs_cifar10),
    "colored_mnist": ([ROOT, "dataset.split=test", "dataset.test_size=100"], needs_mnist),
    "colored_mnist_pair": ([ROOT, "dataset.split=test", "dataset.test_size=100"], needs_mnist),
}
EXPERIMENT_NEEDS = {
    "mnist_dcgan": ([ROOT], needs_mnist),
    "stacked_mnist": ([ROOT, "dataset.size=1000"], needs_mnist),
    "cifar10_dcgan": ([ROOT], needs_cifar10),
    "r3gan_cifar10": ([ROOT], needs_cifar10),
    "r3gan_stacked_mnist": ([ROOT, "dataset.size=1000"], needs_mnist),
    "biggan_cifar10": ([ROOT], needs_cifar10),
    "stylegan2_cifar10": ([ROOT], needs_cifar10),
    # a translation method (no z): tests/test_stargan.py composes and steps it
    "stargan_colored_mnist": ([], pytest.mark.skip(reason="method=stargan: test_stargan.py")),
    "pix2pix_superres_cifar10": ([], pytest.mark.skip(reason="method=pix2pix: test_pix2pix.py")),
    "pix2pix_colorization_cifar10": (
        [],
        pytest.mark.skip(reason="method=pix2pix: test_pix2pix.py"),
    ),
    "cyclegan_horse_deer": ([], pytest.mark.skip(reason="method=cyclegan: test_cyclegan.py")),
    # PNGS: a folder of generated images (in tmp_path); 16 px keeps the step fast
    "stylegan2_folder": (
        ["dataset.root=PNGS", "dataset.resolution=16", "dataset.num_workers=0"],
        None,
    ),
}
# Datasets whose files exist nowhere here: building must fail, naming this expected file.
MISSING_FILES = {"fashion_mnist": "FashionMNIST/raw/train-images-idx3-ubyte.gz"}
# The sample shape each shipped dataset YAML gives.
DATASET_SHAPES = {
    "digits": (1, 16, 16),
    "mnist": (1, 28, 28),
    "stacked_mnist": (3, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "image_folder": (3, 64, 64),
    "ring8": (2,),
    "grid25": (2,),
    "colorization": (3, 32, 32),
    "superres": (3, 32, 32),
    "inpainting": (3, 32, 32),
    "edges": (1, 28, 28),
    "cifar10_pair": (3, 32, 32),
    "colored_mnist": (3, 28, 28),
    "colored_mnist_pair": (3, 28, 28),
    "paired_folder": (3, 12, 12),  # the crop of TRANSLATION_FOLDERS below
    "unpaired_folder": (3, 12, 12),
}
# Translation folders (issue 12): the sub-folders each layout wants, 16 px loaded, 12 px crops.
TRANSLATION_FOLDERS = {
    "paired_folder": ("A", "B"),
    "unpaired_folder": ("trainA", "trainB", "testA", "testB"),
}
FOLDER_SIZES = ["dataset.load_size=16", "dataset.crop=12", "dataset.num_workers=0"]
# Models that only take square images (building them on 2-D points must fail clearly).
IMAGE_ONLY_MODELS = {
    "dcgan",
    "resnet",
    "stylegan2",
    "r3gan",
    "biggan",
}  # models that reject 2-D point data
# |first update| / lr of each optimizer for gradients well above eps (Adam: lr * g / |g|;
# RMSprop with alpha=0.99: lr * g / sqrt(0.01 g^2) = 10 lr).
FIRST_STEP_SIZE = {"torch.optim.Adam": 1.0, "torch.optim.RMSprop": 10.0}
# Parameters (regex on their names) that get exactly zero gradient at the first step, by
# design: they sit in front of a zero-initialised weight that makes a fresh block the
# identity (R3GAN's fix-up init zeroes each residual block's last conv; SAGAN's attention
# output is scaled by gamma = 0). They move from the second step on: test_r3gan.py and
# test_biggan.py check that.
STILL_AT_FIRST_STEP = {
    "r3gan": r"stages\.\d+\.\d+\.conv[12]\.",
    "biggan": r"blocks\.\d+\.(theta|phi|g|o)\.",
}


def params_for(group: str, needs: dict | None = None) -> list:
    out = []
    for name in options(group):
        overrides, mark = (needs or {}).get(name, ([], None))
        out.append(pytest.param(name, overrides, marks=[mark] if mark else [], id=name))
    return out


def plain(cfg: DictConfig) -> DictConfig:
    """What train() works on: enums as strings, interpolations resolved."""
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def write_pngs(folder: Path, n: int = 4, size: tuple[int, int] = (20, 24)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (40 * i, 200 - 30 * i, 90)).save(folder / f"img_{i}.png")
    return folder


def build_all(cfg: DictConfig):
    """The objects train() builds, in its order: device check, data, state, loss."""
    cfg = plain(cfg)
    device = resolve_device(cfg.trainer.device)
    check_trainer(cfg.trainer, device)
    data = build_data(cfg)
    state = build_state(cfg, data.shape, device, data.num_classes)
    return cfg, device, data, state, build_loss(cfg)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def max_change(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: (p.detach() - before[k]).abs().max().item() for k, p in module.named_parameters()}


def train_one_step(cfg: DictConfig) -> tuple[DictConfig, dict, dict, dict, dict]:
    """Build from `cfg`, do one D step and one G step; return the per-parameter max changes."""
    cfg, device, data, state, loss = build_all(cfg)
    B, z_dim = cfg.trainer.batch_size, cfg.model.z_dim
    real, labels = next(data.batches(B, cfg.seed, 0, device))
    labels = labels if cfg.get("conditioning") else None
    autocast = autocast_factory(device, cfg.trainer.precision)
    d_before, g_before = snapshot(state.players["D"].net), snapshot(state.players["G"].net)
    z = torch.randn(B, z_dim, device=device)
    G, D = state.players["G"], state.players["D"]
    d_logs = d_step(G, D, loss, [MicroBatch(real, labels, z)], autocast)
    d_change, g_untouched = (
        max_change(state.players["D"].net, d_before),
        max_change(state.players["G"].net, g_before),
    )
    d_after = snapshot(state.players["D"].net)
    z = torch.randn(B, z_dim, device=device)
    g_logs = g_step(G, D, loss, [MicroBatch(real, labels, z)], autocast)
    g_change, d_untouched = (
        max_change(state.players["G"].net, g_before),
        max_change(state.players["D"].net, d_after),
    )
    # each step moves only its own player
    assert max(g_untouched.values()) == 0.0
    assert max(d_untouched.values()) == 0.0
    assert all(
        p.requires_grad for p in state.players["D"].net.parameters()
    )  # g_step restores D's grads
    logs = {k: v.item() for k, v in {**d_logs, **g_logs}.items()}
    for key, value in logs.items():
        assert -1e6 < value < 1e6, f"{key}={value} is not a finite, sane loss value"
    return cfg, d_change, g_change, logs, {"data": data, "state": state, "loss": loss}


def test_groups_match_conf_folders():
    """The groups parametrized here are exactly the folders under conf/, each with options."""
    folders = sorted(p.name for p in CONF.iterdir() if p.is_dir())
    assert folders == sorted({*GROUPS, *(g.split("/")[0] for g in SWEEP_GROUPS)})
    for group in GROUPS + SWEEP_GROUPS:
        assert len(options(group)) >= 1, group


# ---------------------------------------------------------------------------- model


@pytest.mark.parametrize("name", options("model"))
def test_model_yaml_builds(name, make_cfg):
    """model=<name> builds its G and D classes at the smoke width, with matching shapes."""
    cfg, device, data, state, _ = build_all(make_cfg(f"model={name}"))
    assert type(state.players["G"].net) is get_class(cfg.model.generator._target_)
    assert type(state.players["D"].net) is get_class(cfg.model.discriminator._target_)
    z = torch.randn(4, cfg.model.z_dim)
    fake = state.players["G"].net(z)
    assert tuple(fake.shape) == (4, *data.shape) == (4, 1, 16, 16)
    assert tuple(state.players["D"].net(fake).shape) == (4,)
    # the G_ema copy starts equal to G and is frozen
    for p, q in zip(
        state.players["G"].net.parameters(), state.players["G"].ema.parameters(), strict=True
    ):
        torch.testing.assert_close(p, q)
        assert q.requires_grad is False


MODEL_DATA = [
    pytest.param(model, dataset, id=f"{model}-{dataset}")
    for model in options("model")
    for dataset in ("digits", "ring8")
]


@pytest.mark.parametrize(("model", "dataset"), MODEL_DATA)
def test_model_takes_one_optimizer_step(model, dataset, make_cfg):
    """One d_step then one g_step: every parameter of each player moves by about lr (Adam)."""
    cfg = make_cfg(f"model={model}", f"dataset={dataset}", "optimizer=adam")
    if dataset == "ring8" and model in IMAGE_ONLY_MODELS:
        with pytest.raises(GanrunError, match=r"needs square images.*model=mlp"):
            build_all(cfg)
        return
    cfg, d_change, g_change, logs, built = train_one_step(cfg)
    for player, change, lr in (
        ("D", d_change, cfg.optimizer.d.lr),
        ("G", g_change, cfg.optimizer.g.lr),
    ):
        moved = [k for k, v in change.items() if v > 0.0]
        still = STILL_AT_FIRST_STEP.get(model)
        expected = [k for k in change if not (still and re.search(still, k))]
        assert sorted(moved) == sorted(expected), f"{player} parameters that did not move"
        # Adam's first update is lr * g / (|g| + eps): at most lr, and lr where |g| >> eps;
        # measured within float32 rounding at the largest weight (StyleGAN2's mapping weights
        # are stored N(0, 1) / lr_mul, about 100, where one ulp is ~1e-5)
        net = built["state"].players[player].net
        ulp = max(p.detach().abs().max().item() for p in net.parameters()) * 2.0**-23
        torch.testing.assert_close(max(change.values()), lr, rtol=1e-3, atol=ulp)
    assert sorted(logs) == ["d/fake", "d/real", "loss/d", "loss/g"]


# ----------------------------------------------------------------------------- loss


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", options("loss"))
def test_loss_yaml_builds_and_steps(name, precision, make_cfg):
    """loss=<name> builds its class with the configured penalties and trains a step,
    also under bf16 autocast (where G's samples come out in bf16 and the reals do not)."""
    _, d_change, g_change, logs, built = train_one_step(
        make_cfg(f"loss={name}", "model=mlp", "dataset=ring8", f"trainer.precision={precision}")
    )
    loss = built["loss"]
    composed = make_cfg(f"loss={name}").loss
    assert type(loss) is get_class(composed._target_)
    assert sorted(loss.penalties) == sorted(composed.penalties)
    for key, node in composed.penalties.items():
        assert type(loss.penalties[key]) is get_class(node._target_)
        torch.testing.assert_close(loss.penalties[key].weight, float(node.weight))
    # each penalty is logged under its own name next to the standard keys
    assert sorted(logs) == sorted(["d/fake", "d/real", "loss/d", "loss/g", *composed.penalties])
    assert max(d_change.values()) > 0.0 and max(g_change.values()) > 0.0


# -------------------------------------------------------------------------- dataset


def dataset_overrides(name: str, extra: list[str], tmp_path: Path) -> list[str]:
    out = [f"dataset={name}", "model=mlp", *extra]  # the MLP takes any sample shape
    if name == "image_folder":
        out += [f"dataset.root='{write_pngs(tmp_path / 'images', n=9)}'", "dataset.num_workers=0"]
    if name in MISSING_FILES:
        out.append(f"dataset.root='{tmp_path}'")
    if name in TRANSLATION_FOLDERS:  # the same file names in every sub-folder (paired by name)
        for sub in TRANSLATION_FOLDERS[name]:
            write_pngs(tmp_path / "pairs" / sub, n=9)
        out += [f"dataset.root='{tmp_path / 'pairs'}'", *FOLDER_SIZES]
    return out


def check_translation_batches(data) -> None:
    """Translation data yield (a, b) in [-1, 1] at source_shape and shape, or (x, domain) for
    domain-labelled data; their test set has names for every source image."""
    first, second = next(data.batches(8, seed=0))
    assert tuple(first.shape) == (8, *data.source_shape)
    assert -1.0 <= first.min().item() <= first.max().item() <= 1.0
    if data.num_classes is None:
        assert tuple(second.shape) == (8, *data.shape)
        assert -1.0 <= second.min().item() <= second.max().item() <= 1.0
    else:
        assert 0 <= second.min().item() <= second.max().item() < data.num_classes
    test = data.test_set()
    assert len(test.names) == len(test.a) > 0 and tuple(test.b.shape[1:]) == tuple(data.shape)


@pytest.mark.parametrize(("name", "extra"), params_for("dataset", DATASET_NEEDS))
def test_dataset_yaml_builds(name, extra, tmp_path, make_cfg):
    """dataset=<name> builds (or, without its files, fails naming them) and yields batches."""
    cfg = make_cfg(*dataset_overrides(name, extra, tmp_path))
    if name in MISSING_FILES:
        with pytest.raises(GanrunError) as err:
            build_all(cfg)
        assert str(tmp_path / MISSING_FILES[name]) in str(err.value)
        assert "dataset.root" in str(err.value)
        return
    cfg, device, data, state, _ = build_all(cfg)
    assert tuple(data.shape) == DATASET_SHAPES.get(name, tuple(data.shape))
    if hasattr(data, "test_set"):  # translation data: its methods step it (test_methods.py)
        check_translation_batches(data)
        return
    real, labels = next(data.batches(8, seed=0))
    assert tuple(real.shape) == (8, *data.shape)
    assert real.dtype == torch.float32
    if len(data.shape) == 3:  # images are scaled to [-1, 1]
        assert -1.0 <= real.min().item() <= real.max().item() <= 1.0
    if data.num_classes is None:
        assert labels is None
    else:
        assert 0 <= labels.min().item() <= labels.max().item() < data.num_classes
    assert tuple(state.players["D"].net(real).shape) == (8,)
    assert tuple(state.players["G"].net(torch.randn(8, cfg.model.z_dim)).shape) == (8, *data.shape)


def test_image_folder_without_root_names_the_key(make_cfg):
    """image_folder's root is mandatory (???): building without it says which key to pass."""
    with pytest.raises(GanrunError, match=r"dataset\.root is required"):
        build_data(make_cfg("dataset=image_folder"))


def test_fashion_mnist_names_every_missing_file(tmp_path, make_cfg):
    """Without files, fashion_mnist names both expected files of the split and the fix."""
    cfg = make_cfg("dataset=fashion_mnist", f"dataset.root='{tmp_path}'", "dataset.split=test")
    with pytest.raises(GanrunError) as err:
        build_data(plain(cfg))
    message = str(err.value)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert str(tmp_path / "FashionMNIST" / "raw" / name) in message
    assert "dataset.download=true" in message


# ------------------------------------------------------------------------ optimizer


@pytest.mark.parametrize("name", options("optimizer"))
def test_optimizer_yaml_builds_and_steps(name, make_cfg):
    """optimizer=<name> builds both optimizers over their own player, with the set lr."""
    cfg, d_change, g_change, _, built = train_one_step(
        make_cfg(f"optimizer={name}", "model=mlp", "dataset=ring8")
    )
    state = built["state"]
    for opt, node, model, change in (
        (state.players["G"].opt, cfg.optimizer.g, state.players["G"].net, g_change),
        (state.players["D"].opt, cfg.optimizer.d, state.players["D"].net, d_change),
    ):
        assert type(opt) is get_class(node._target_)
        assert len(opt.param_groups) == 1
        torch.testing.assert_close(opt.param_groups[0]["lr"], float(node.lr))
        assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in model.parameters()}
        if node._target_ in FIRST_STEP_SIZE:
            expected = FIRST_STEP_SIZE[node._target_] * node.lr
            torch.testing.assert_close(max(change.values()), expected, rtol=1e-3, atol=0.0)
        else:
            assert max(change.values()) > 0.0


def test_optimizer_two_time_scales(make_cfg):
    """TTUR: optimizer.g.lr and optimizer.d.lr reach their own optimizers, not each other's."""
    cfg = make_cfg("model=mlp", "dataset=ring8", "optimizer.g.lr=1e-4", "optimizer.d.lr=4e-4")
    _, _, _, state, _ = build_all(cfg)
    torch.testing.assert_close(state.players["G"].opt.param_groups[0]["lr"], 1e-4)
    torch.testing.assert_close(state.players["D"].opt.param_groups[0]["lr"], 4e-4)
    assert tuple(state.players["D"].opt.param_groups[0]["betas"]) == (0.5, 0.999)


# -------------------------------------------------------------------------- trainer


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_yaml_composes_and_steps(name, make_cfg):
    """trainer=<name> under debug=smoke runs on CPU (its precision included) for one step."""
    cfg, _, _, logs, built = train_one_step(make_cfg(f"trainer={name}"))
    assert cfg.trainer.device == "cpu"  # the smoke preset wins over the trainer file
    assert cfg.trainer.max_steps == 4 and cfg.trainer.batch_size == 8
    assert (
        next(built["state"].players["G"].net.parameters()).dtype == torch.float32
    )  # autocast, not casting


def test_trainer_gpu_keys():
    """trainer=gpu asks for CUDA in bf16, with the GPU-sized defaults from its file."""
    cfg = plain(compose_cfg("trainer=gpu", smoke=False))
    assert cfg.trainer.device == "cuda"
    assert cfg.trainer.precision == "bf16"
    assert (cfg.trainer.max_steps, cfg.trainer.batch_size) == (20000, 128)
    assert (cfg.trainer.log_every, cfg.trainer.sample_every, cfg.trainer.ckpt_every) == (
        100,
        1000,
        5000,
    )
    assert cfg.trainer.n_critic == 1  # filled in from the schema


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_trainer_gpu_fails_up_front_without_cuda():
    """Without a GPU, trainer=gpu stops in resolve_device with a message naming the fix."""
    cfg = plain(compose_cfg("trainer=gpu", smoke=False))
    with pytest.raises(GanrunError, match=r"trainer\.device=cuda.*trainer\.device=cpu"):
        resolve_device(cfg.trainer.device)
    assert resolve_device("auto") == torch.device("cpu")


def test_fp16_on_cpu_is_rejected(make_cfg):
    """fp16 autocast needs CUDA: check_trainer says so before any work."""
    cfg = plain(make_cfg("trainer.precision=fp16"))
    with pytest.raises(GanrunError, match=r"trainer\.precision=fp16 needs a CUDA device"):
        check_trainer(cfg.trainer, torch.device("cpu"))


# --------------------------------------------------------------------------- logger


@pytest.mark.parametrize("name", options("logger"))
def test_logger_yaml_composes_and_builds(name, make_cfg):
    """logger=<name> composes next to the rest, which still builds; `none` has no backend,
    any other names a backend class (log, log_image, close) that train() completes with
    `_partial_` (tests/test_wandb.py runs wandb's)."""
    cfg, _, _, _, _ = build_all(make_cfg(f"logger={name}"))
    if name == "none":
        assert dict(cfg.logger) == {}
        return
    backend = get_class(cfg.logger._target_)
    assert all(callable(getattr(backend, m, None)) for m in ("log", "log_image", "close"))
    assert cfg.logger._partial_ is True


# ----------------------------------------------------------------------- experiment


def flat(node, prefix: str = "") -> dict[str, object]:
    """{'a.b': value} for every leaf of a YAML mapping (the defaults list left out)."""
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "defaults":
            continue
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def yaml_leaves(group: str, name: str) -> dict[str, object]:
    return flat(OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml")))


@pytest.mark.parametrize(("name", "extra"), params_for("experiment", EXPERIMENT_NEEDS))
def test_experiment_yaml_composes_builds_and_steps(name, extra, make_cfg, tmp_path):
    """experiment=<name> sets its keys, the smoke preset overrides it, and one step runs."""
    extra = [e.replace("PNGS", f"'{write_pngs(tmp_path / 'images', n=9)}'") for e in extra]
    full = plain(compose_cfg(f"experiment={name}", *extra, smoke=False))
    for key, value in yaml_leaves("experiment", name).items():
        assert OmegaConf.select(full, key) == value, key
    # the `override /group: option` lines pick the files named there
    spec = OmegaConf.load(CONF / "experiment" / f"{name}.yaml")
    for entry in spec.get("defaults", []):
        for group_key, option in entry.items():
            group = group_key.split()[-1].lstrip("/")
            for key, target in yaml_leaves(group, option).items():
                if key.endswith("_target_"):
                    assert OmegaConf.select(full, f"{group}.{key}") == target, (group, key)
    cfg, d_change, g_change, _, _ = train_one_step(make_cfg(f"experiment={name}", *extra))
    assert cfg.trainer.max_steps == 4 and cfg.trainer.batch_size == 8  # debug comes after
    assert cfg.model.generator.width == 8
    assert max(d_change.values()) > 0.0 and max(g_change.values()) > 0.0


# ---------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("name", options("metrics"))
@pytest.mark.parametrize("task", ["train", "eval"])
def test_metric_yaml_composes_and_builds(name, task):
    """metrics=[<name>] puts one entry under metrics that builds a metric with problem()."""
    from ganrun.evaluation.image_evaluator import build_metrics

    cfg = compose_cfg(f"metrics=[{name}]", task=task, smoke=task == "train")
    built = build_metrics(cfg.metrics)
    assert list(built) == [name]
    assert built[name].problem(5000, 5000, 128, True) is None  # ample samples: no objection
    assert isinstance(built[name].needs_real_features, bool)


def test_metrics_default_to_fid_and_combine():
    assert list(compose_cfg().metrics) == ["fid", "features"]
    cfg = compose_cfg("metrics=[fid,kid,is,pr]", "metrics.kid.subsets=7", task="eval", smoke=False)
    assert [k for k in cfg.metrics if k != "features"] == ["fid", "kid", "is", "pr"]
    assert cfg.metrics.kid.subsets == 7 and cfg.metrics.pr.k == 3


# ---------------------------------------------------------------------------- debug


@pytest.mark.parametrize("name", options("debug"))
def test_debug_yaml_sets_its_keys_and_steps(name):
    """debug=<name> sets every key it lists, on top of the defaults, and a step runs."""
    cfg = compose_cfg(f"debug={name}", smoke=False)
    for key, value in yaml_leaves("debug", name).items():
        assert OmegaConf.select(plain(cfg), key) == value, key
    _, d_change, g_change, _, _ = train_one_step(cfg)
    assert max(d_change.values()) > 0.0 and max(g_change.values()) > 0.0


def test_smoke_is_tiny():
    """The smoke preset is what keeps the test suite fast: few steps, narrow nets, CPU."""
    cfg = plain(compose_cfg())
    assert cfg.trainer.device == "cpu"
    assert (cfg.trainer.max_steps, cfg.trainer.batch_size) == (4, 8)
    assert (cfg.model.generator.width, cfg.model.discriminator.width) == (8, 8)


# --------------------------------------------------------------------- schema errors


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_step=3", "trainer.max_step"),
        ("trainer.batch_size=big", "trainer.batch_size"),
        ("trainer.device=tpu", "trainer.device"),
        ("trainer.precision=fp8", "trainer.precision"),
        ("trainer.ema_decay=fast", "trainer.ema_decay"),
    ],
)
def test_schema_rejects_bad_trainer_keys_at_compose_time(override, key):
    """A typo or a wrongly typed trainer value fails in compose, naming the key."""
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(override)
    assert key in str(err.value)


def test_mistyped_model_key_fails_at_build_naming_it(make_cfg):
    """An unknown constructor argument becomes one GanrunError that names the config node."""
    cfg = make_cfg("+model.generator.widht=3")
    with pytest.raises(
        GanrunError, match=r"model\.generator: could not build ganrun\.models\.dcgan"
    ):
        build_all(cfg)

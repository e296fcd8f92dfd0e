"""Feature extractors: the digit extractor's numbers, the contract, and each dataset's default."""

from __future__ import annotations

import math
import os

import pytest
import torch
from conftest import CONF, compose_cfg, write_digit_classifier
from hydra.utils import get_class

from ganrun.errors import GanrunError
from ganrun.evaluation.features.digit_classifier import load_digit_classifier
from ganrun.evaluation.features.extractor import (
    DigitFeatures,
    FeatureExtractor,
    extract,
    extractor_identity,
    joint_logits,
)

DIGITS = "ganrun.evaluation.features.extractor.DigitFeatures"
INCEPTION = "ganrun.evaluation.features.inception.InceptionFeatures"
# the extractor each dataset YAML names (None: 2-D points, no image features)
DEFAULT_EXTRACTOR = {
    "digits": DIGITS,
    "mnist": DIGITS,
    "stacked_mnist": DIGITS,
    "fashion_mnist": INCEPTION,  # the digit classifier is no feature space for clothes
    "cifar10": INCEPTION,
    "image_folder": INCEPTION,
    "ring8": None,
    "grid25": None,
    # translation data: the target domain's feature space (a derived task takes its source's)
    "paired_folder": INCEPTION,
    "unpaired_folder": INCEPTION,
    "colorization": INCEPTION,  # CIFAR-10
    "superres": INCEPTION,  # CIFAR-10
    "inpainting": INCEPTION,  # CIFAR-10
    "edges": DIGITS,  # MNIST
    "cifar10_pair": INCEPTION,
    "colored_mnist": DIGITS,
    "colored_mnist_pair": DIGITS,
}


def images(n: int, c: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), generator=gen, dtype=torch.uint8)


def test_grey_features_are_the_classifiers_own(digit_cache):
    """(N, 1, H, W) uint8 -> the classifier's 128-d features and 10 logits of x/127.5 - 1."""
    extractor = DigitFeatures(batch_size=7)  # several chunks
    x = images(20)
    feats, logits = extractor(x)
    net = load_digit_classifier(digit_cache / "digit_classifier.pt")
    expected = net.features(x.float() / 127.5 - 1.0)
    assert feats.shape == (20, 128) and logits.shape == (20, 10)
    torch.testing.assert_close(feats, expected)
    # logits are the log-softmax of the head's output (same softmax, so the same classes)
    torch.testing.assert_close(logits, torch.log_softmax(net.head(expected), dim=1))


def test_uint8_and_unit_range_floats_agree(digit_cache):
    extractor = DigitFeatures()
    x = images(6)
    f_uint8, _ = extractor(x)
    f_float, _ = extractor(x.float() / 127.5 - 1.0)
    torch.testing.assert_close(f_uint8, f_float)


def test_stacked_channels_concatenate_features_and_join_logits(digit_cache):
    """3 channels: [f(c0), f(c1), f(c2)] (384-d); logits over the 1000 digit triples."""
    extractor = DigitFeatures()
    x = images(5, c=3)
    feats, logits = extractor(x)
    per_channel = [extractor(x[:, i : i + 1])[0] for i in range(3)]
    assert feats.shape == (5, 384) and logits.shape == (5, 1000)
    torch.testing.assert_close(feats, torch.cat(per_channel, dim=1))
    logp = [extractor(x[:, i : i + 1])[1] for i in range(3)]  # log-softmax per channel
    torch.testing.assert_close(
        logits[:, 100 * 3 + 10 * 7 + 1], logp[0][:, 3] + logp[1][:, 7] + logp[2][:, 1]
    )
    torch.testing.assert_close(logits.exp().sum(1), torch.ones(5, dtype=torch.float32))


def test_joint_logits_by_hand():
    """Two channels, two classes: p = (0.5, 0.5) and (0.25, 0.75) -> the four products."""
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75]]]))
    expected = torch.log(torch.tensor([[0.125, 0.375, 0.125, 0.375]]))
    torch.testing.assert_close(joint_logits(logits), expected)


def test_extract_streams_chunks(digit_cache):
    extractor = DigitFeatures()
    x = images(10)
    feats, logits = extract(extractor, x.split(3))
    whole_f, whole_l = extractor(x)
    torch.testing.assert_close(feats, whole_f)
    torch.testing.assert_close(logits, whole_l)


def test_digit_features_fulfil_the_contract(digit_cache):
    extractor = DigitFeatures()
    assert isinstance(extractor, FeatureExtractor)
    assert (extractor.name, extractor.dims) == ("digit-classifier", 128)


def test_missing_weights_name_the_script(tmp_path):
    with pytest.raises(GanrunError, match="train_digit_classifier.py"):
        DigitFeatures(weights=str(tmp_path / "empty" / "digit_classifier.pt"))


def test_empty_cache_uses_the_packaged_weights(tmp_path, monkeypatch):
    """A fresh machine (nothing in the cache): the digit features come from the packaged
    classifier, with no extra step."""
    from ganrun.evaluation.features.digit_classifier import PACKAGED

    monkeypatch.setenv("GANRUN_CACHE", str(tmp_path / "empty"))
    extractor = DigitFeatures()
    assert extractor.weights_path == PACKAGED


def test_identity_follows_the_weights_file(tmp_path):
    """Another weights file (or the same path rewritten) is another feature space."""
    a = write_digit_classifier(tmp_path / "a", seed=0)
    b = write_digit_classifier(tmp_path / "b", seed=1)
    id_a = extractor_identity(DigitFeatures(str(a)))
    assert id_a == extractor_identity(DigitFeatures(str(a)))
    assert id_a != extractor_identity(DigitFeatures(str(b)))
    assert id_a["name"] == "digit-classifier" and id_a["weights"]["size"] == a.stat().st_size
    stat = a.stat()
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert extractor_identity(DigitFeatures(str(a))) != id_a


# ---------------------------------------------------------------------------- config


def dataset_options() -> list[str]:
    return sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))


@pytest.mark.parametrize("name", dataset_options())
def test_each_dataset_names_its_extractor(name):
    """dataset=<name> selects its default extractor; metrics/features= overrides it."""
    assert name in DEFAULT_EXTRACTOR, f"add dataset {name}'s extractor to DEFAULT_EXTRACTOR"
    cfg = compose_cfg(f"dataset={name}")
    features = cfg.metrics.get("features")
    assert (None if features is None else features._target_) == DEFAULT_EXTRACTOR[name]
    for option, target in (("inception", INCEPTION), ("digit_classifier", DIGITS)):
        chosen = compose_cfg(f"dataset={name}", f"metrics/features={option}")
        assert chosen.metrics.features._target_ == target


def test_experiment_datasets_bring_their_extractor():
    assert compose_cfg("experiment=stacked_mnist").metrics.features._target_ == DIGITS
    assert compose_cfg("experiment=cifar10_dcgan").metrics.features._target_ == INCEPTION
    assert compose_cfg("experiment=ring8").metrics.get("features") is None


def test_extractor_yamls_name_importable_classes():
    for path in sorted((CONF / "metrics" / "features").glob("*.yaml")):
        cfg = compose_cfg(f"metrics/features={path.stem}")
        cls = get_class(cfg.metrics.features._target_)
        assert isinstance(cls.name, str) and cls.dims in (128, 2048), path.stem


def test_digit_extractor_builds_from_its_yaml(digit_cache):
    from ganrun.evaluation.image_evaluator import build_extractor

    cfg = compose_cfg("metrics/features=digit_classifier")
    extractor = build_extractor(cfg.metrics.features, torch.device("cpu"))
    feats, logits = extractor(images(3))
    assert feats.shape == (3, 128) and logits.shape == (3, 10)
    assert math.isfinite(feats.sum().item())

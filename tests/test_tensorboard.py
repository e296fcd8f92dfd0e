"""logger=tensorboard, read back with TensorBoard's own reader (EventAccumulator).

No mocks: a 4-step smoke run really writes event files; the tests compare what TensorBoard
reads with what the run folder holds (metrics.jsonl, samples/<step>.png, .hydra/config.yaml).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image
from test_train import metrics, resume, run

from ganrun.errors import GanrunError
from ganrun.tracking.tensorboard_backend import TensorBoardBackend, markdown_code
from ganrun.tracking.tracker import RunLabels

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
tensor_util = pytest.importorskip("tensorboard.util.tensor_util")

TB = "logger=tensorboard"


def read_events(folder: Path):
    """Every scalar, image and text event in `folder` (none dropped by size guidance)."""
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0}
    )
    acc.Reload()
    return acc


def texts(acc, tag: str) -> list[tuple[int, str]]:
    """(step, text) of the add_text entries named `tag`."""
    return [
        (e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode())
        for e in acc.Tensors(f"{tag}/text_summary")
    ]


def scalars_of(acc) -> dict[str, list[tuple[int, np.float32]]]:
    return {
        tag: [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def jsonl_scalars(rows: list[dict]) -> dict[str, list[tuple[int, np.float32]]]:
    """metrics.jsonl as {name: [(step, value as float32)]}: TensorBoard keeps float32."""
    out: dict[str, list] = {}
    for row in rows:
        for k, v in row.items():
            if k != "step":
                out.setdefault(k, []).append((row["step"], np.float32(v)))
    return out


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tb") / "run"
    run(folder, TB)
    return folder


def test_scalars_equal_metrics_jsonl(tb_run):
    """Every metric of metrics.jsonl, at every step, is in the event file with the same value
    (float32-exact), and nothing else is."""
    acc = read_events(tb_run / "tensorboard")
    want = jsonl_scalars(metrics(tb_run))
    assert {"loss/d", "loss/g", "d/real", "d/fake"} <= set(want)
    assert scalars_of(acc) == want
    assert [s for s, _ in want["loss/d"]] == [1, 2, 3, 4]


def test_sample_grids_are_images(tb_run):
    """The sample grid of each sample step (2 and 4) is the `samples` image: the PNG's size and
    pixels (as RGB)."""
    acc = read_events(tb_run / "tensorboard")
    events = acc.Images("samples")
    assert [e.step for e in events] == [2, 4]
    for e in events:
        with Image.open(tb_run / "samples" / f"{e.step:07d}.png") as png:
            want = np.asarray(png.convert("RGB"))
        assert (e.height, e.width) == want.shape[:2]
        got = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB"))
        np.testing.assert_array_equal(got, want)


def test_config_is_the_resolved_yaml(tb_run):
    """The `config` text entry (step 0) is the run's config, resolved (interpolations such as
    model.generator.z_dim filled in), as a Markdown code block."""
    acc = read_events(tb_run / "tensorboard")
    ((step, text),) = texts(acc, "config")
    assert step == 0 and all(line.startswith("    ") for line in text.splitlines())
    got = yaml.safe_load("\n".join(line[4:] for line in text.splitlines()))
    saved = OmegaConf.load(tb_run / ".hydra" / "config.yaml")
    assert got == OmegaConf.to_container(saved, resolve=True)
    assert got["model"]["generator"]["z_dim"] == saved.model.z_dim
    assert got["logger"]["_target_"].endswith("TensorBoardBackend")


def test_resume_continues_the_event_folder(tmp_path):
    """A run rewound to its step-2 checkpoint in the same folder and trained on to step 6
    reads back as one run: steps 1..6 once each with metrics.jsonl's values, grids at 2, 4, 6,
    and both sessions' event files in the one folder (steps 3-4 of the first were purged)."""
    folder = tmp_path / "run"
    run(folder, TB)
    resume(folder, folder / "checkpoints" / "step_0000002.pt", "trainer.max_steps=6")
    events = folder / "tensorboard"
    assert len(list(events.glob("events.out.tfevents.*"))) == 2
    acc = read_events(events)
    want = jsonl_scalars(metrics(folder))
    assert [s for s, _ in want["loss/g"]] == [1, 2, 3, 4, 5, 6]
    assert scalars_of(acc) == want
    assert [e.step for e in acc.Images("samples")] == [2, 4, 6]
    assert [s for s, _ in texts(acc, "config")] == [0, 2]


def backend(tmp_path: Path, **kw) -> TensorBoardBackend:
    return TensorBoardBackend(tmp_path, {"a": 1, "b": "${a}"}, RunLabels("x", "x"), 0, False, **kw)


def test_log_video_logs_the_path_as_text(tmp_path):
    """log_video records where the mp4 is (TensorBoard plays no mp4): a text entry at the
    step; a failed run's close leaves its exit code; close twice is harmless."""
    b = backend(tmp_path)
    b.log_video("video/interpolation", tmp_path / "videos" / "interp.mp4", 7)
    b.close(exit_code=3)
    b.close()
    acc = read_events(tmp_path / "tensorboard")
    assert texts(acc, "video/interpolation") == [(7, f"video: `{tmp_path}/videos/interp.mp4`")]
    assert texts(acc, "run/exit_code") == [(0, "the run ended with exit code 3")]
    assert texts(acc, "config") == [(0, "    a: 1\n    b: 1")]


def test_dir_and_flush_secs(tmp_path):
    """logger.dir: relative to the run folder, or absolute; flush_secs must be positive."""
    b = backend(tmp_path / "r", dir="tb_events", log_config=False)
    b.log({"loss/d": 0.5}, 1)
    b.close()
    acc = read_events(tmp_path / "r" / "tb_events")
    assert scalars_of(acc) == {"loss/d": [(1, np.float32(0.5))]}
    assert acc.Tags()["tensors"] == []
    elsewhere = tmp_path / "abs"
    backend(tmp_path / "r2", dir=str(elsewhere)).close()
    assert list(elsewhere.glob("events.out.tfevents.*")) and not (tmp_path / "r2").exists()
    with pytest.raises(GanrunError, match=r"logger\.flush_secs=0 must be > 0"):
        backend(tmp_path / "r3", flush_secs=0)


def test_markdown_code():
    assert markdown_code("a: 1\nb:\n  c: 2\n") == "    a: 1\n    b:\n      c: 2"
    assert markdown_code("") == ""

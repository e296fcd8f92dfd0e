"""`ganrun report`: every section is there, every embedded image and video decodes; a sweep
lists each job with its overrides, status, best metric and last grid. A slow test renders
the report in headless Chromium (skipped when it is not installed)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from test_train import run

from ganrun.cli.main import main as ganrun_main
from ganrun.errors import GanrunError
from ganrun.tracking.report import write_report

DATA_URI = re.compile(r'src="data:(?P<mime>[a-z]+/[a-z0-9]+);base64,(?P<data>[A-Za-z0-9+/=]+)"')
RUN_SECTIONS = ["config", "summary", "plots", "samples", "videos"]
SWEEP_SECTIONS = ["jobs", "summary", "plots", "samples"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Sections(HTMLParser):
    """The report's <section id=...> elements, each with the data URIs and text inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current: str | None = None
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "section":
            self.current = a["id"]
            self.sections[self.current] = {"uris": [], "text": [], "rows": []}
        elif self.current and a.get("src", "").startswith("data:"):
            self.sections[self.current]["uris"].append(a["src"])
        elif self.current and tag == "tr":
            self.sections[self.current]["rows"].append([])

    def handle_data(self, data: str) -> None:
        if self.current and data.strip():
            self.sections[self.current]["text"].append(data.strip())
            rows = self.sections[self.current]["rows"]
            if rows:
                rows[-1].append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.current = None


def parse(path: Path) -> dict[str, dict]:
    p = Sections()
    p.feed(path.read_text())
    return p.sections


def decode_uri(uri: str) -> tuple[str, bytes]:
    head, data = uri.split(",", 1)
    return head[len("data:") : -len(";base64")], base64.b64decode(data)


def images_of(uris: list[str]) -> list[Image.Image]:
    out = []
    for uri in uris:
        mime, data = decode_uri(uri)
        if mime.startswith("image/"):
            img = Image.open(io.BytesIO(data))
            img.load()
            out.append(img)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A 4-step smoke run with eval metrics (grids at steps 2 and 4), no plots or video yet."""
    folder = tmp_path_factory.mktemp("report") / "run"
    run(folder, "trainer.eval_every=2", "trainer.eval_samples=200")
    return folder


@pytest.fixture(scope="module")
def run_report(run_dir) -> Path:
    return write_report(run_dir)


def test_run_report_holds_every_section(run_report, run_dir):
    assert run_report == run_dir / "report.html"
    sections = parse(run_report)
    assert list(sections) == RUN_SECTIONS
    config = " ".join(sections["config"]["text"])
    assert "max_steps: 4" in config and "_target_: ganrun.models.dcgan.DCGANGenerator" in config
    header, row = sections["summary"]["rows"][:2]
    cells = dict(zip(header, row))
    assert cells["job"] == "run" and cells["steps"] == "4"
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert cells["loss/g"] == f"{last['loss/g']:.4g}"


def test_run_report_images_decode(run_report, run_dir):
    """Plots: training, schedules, eval as PNGs; samples: one grid per step, the same pixels
    as samples/<step>.png."""
    sections = parse(run_report)
    plots = images_of(sections["plots"]["uris"])
    assert [img.format for img in plots] == ["PNG"] * 3
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == [
        "eval.png",
        "schedules.png",
        "training.png",
    ]
    grids = images_of(sections["samples"]["uris"])
    assert sections["samples"]["text"] == ["Sample grid at each step (fixed noise)", "step 2",
                                           "step 4"]  # fmt: skip
    for step, img in zip((2, 4), grids, strict=True):
        with Image.open(run_dir / "samples" / f"{step:07d}.png") as expected:
            np.testing.assert_array_equal(np.asarray(img), np.asarray(expected))


def test_run_report_embeds_the_timelapse(run_report, run_dir):
    """The video section holds the time-lapse mp4 (2 H.264 frames: the grids at steps 2 and 4),
    the bytes of the videos/timelapse.mp4 the report made."""
    uris = parse(run_report)["videos"]["uris"]
    assert [decode_uri(u)[0] for u in uris] == ["video/mp4"]
    data = decode_uri(uris[0])[1]
    assert data == (run_dir / "videos" / "timelapse.mp4").read_bytes()
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == 2


def test_report_is_self_contained(run_report):
    """No file is referenced: every src is a data URI, no href leaves the page."""
    text = run_report.read_text()
    srcs = re.findall(r'src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:") for s in srcs)
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', text))


@pytest.fixture(scope="module")
def sweep(run_dir, tmp_path_factory) -> Path:
    """A sweep folder of three jobs: two copies of the run (completed, with objectives) and a
    job that failed before training (job.json only)."""
    root = tmp_path_factory.mktemp("sweep")
    for job, (loss, fid) in enumerate((("ns", 31.5), ("hinge", 42.25))):
        folder = root / str(job)
        shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns("report.html"))
        (folder / "job.json").write_text(json.dumps({
            "status": "completed", "overrides": [f"loss={loss}"],
            "objective": {"metric": "eval/fid", "direction": "minimize", "reduce": "best",
                          "value": fid}}))  # fmt: skip
        (folder / ".hydra" / "overrides.yaml").write_text(f"- loss={loss}\n")
    (root / "2").mkdir()
    (root / "2" / "job.json").write_text(
        json.dumps({"status": "failed", "overrides": ["loss=nope"], "error": "no loss nope"})
    )
    return root


def test_sweep_report_lists_every_job(sweep):
    path = write_report(sweep, sweep / "out" / "sweep.html")
    sections = parse(path)
    assert list(sections) == SWEEP_SECTIONS
    header, *rows = sections["jobs"]["rows"]
    assert header == ["job", "overrides", "status", "best metric", "steps"]
    assert rows == [
        ["0", "loss=ns", "completed", "eval/fid 31.5", "4"],
        ["1", "loss=hinge", "completed", "eval/fid 42.25", "4"],
        ["2", "loss=nope", "failed"],
    ]
    assert "class=failed" in path.read_text()
    assert [img.format for img in images_of(sections["plots"]["uris"])] == ["PNG", "PNG"]
    grids = images_of(sections["samples"]["uris"])
    assert len(grids) == 2  # the failed job drew none
    assert sections["samples"]["text"][1:] == ["job 0 (completed), step 4",
                                               "job 1 (completed), step 4"]  # fmt: skip
    with Image.open(sweep / "0" / "samples" / "0000004.png") as last:
        np.testing.assert_array_equal(np.asarray(grids[0]), np.asarray(last))


def test_report_and_plot_commands(run_dir, tmp_path, capsys):
    """`ganrun report <run> --out` and `ganrun plot <run>` are registered plain commands."""
    ganrun_main(["report", str(run_dir), "--out", str(tmp_path / "r.html")])
    assert (tmp_path / "r.html").is_file()
    ganrun_main(["plot", str(run_dir)])
    assert f"wrote {run_dir / 'plots' / 'training.png'}" in capsys.readouterr().out


def test_report_of_nothing_is_explained(tmp_path):
    with pytest.raises(GanrunError, match="no runs under"):
        write_report(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(run_report, tmp_path):
    """Chromium renders the report to a screenshot that is not blank: the page loads, the
    embedded PNGs paint (the screenshot holds many colours, not one background)."""
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={shot}",
             "--window-size=1200,2000", f"file://{run_report}"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    with Image.open(shot) as img:
        assert img.size == (1200, 2000)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50

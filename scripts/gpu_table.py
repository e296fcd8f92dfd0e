"""The one table of scripts/gpu_check.sh, from the files it leaves in its results folder.

    python scripts/gpu_table.py gpu_results/      # prints the table, writes gpu_results/table.md

Reads status.txt (`# <device line>`, then `<step> <exit code|skip> <seconds> [note]` per step),
pytest.xml (pytest's --junitxml), bench_speed.txt and bench_fid.txt (the two scripts' stdout,
parsed line by line; a step that ran out of time still gives the rows it printed). One row per
check: the gpu tests (counts, then a row per failure), bench_speed's matmul peak, every mode of
every case and the scaling rows, bench_fid's FIDs and speed-up. A Markdown table, so the same
text reads in a terminal and pastes into the README.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_CODES = (124, 137)  # timeout(1): limit reached; killed after --kill-after


@dataclass(frozen=True)
class Step:
    rc: int | None  # None: skipped
    seconds: float
    note: str = ""


Row = tuple[str, str, str, str]  # check, result, figure, seconds


def read_status(text: str) -> tuple[str, dict[str, Step]]:
    """(the device line, {step: Step}) from status.txt."""
    device, steps = "", {}
    for line in text.splitlines():
        if line.startswith("#"):
            device = line[1:].strip()
        elif line.strip():
            name, rc, seconds, *note = line.split(" ", 3)
            steps[name] = Step(None if rc == "skip" else int(rc), float(seconds), " ".join(note))
    return device, steps


def outcome(step: Step | None, limit_hint: str = "") -> str:
    if step is None:
        return "not run"
    if step.rc is None:
        return "skipped"
    if step.rc == 0:
        return "ok"
    if step.rc in TIMEOUT_CODES:
        return f"timed out{limit_hint}"
    return f"failed (exit {step.rc})"


def first_line(text: str | None, width: int = 100) -> str:
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def pytest_rows(xml: str | None, step: Step | None) -> list[Row]:
    """The count row, then one row per failed or erroring test."""
    secs = "" if step is None else f"{step.seconds:.1f}"
    if not xml:
        return [("pytest -m gpu", outcome(step), "no pytest.xml (see pytest.txt)", secs)]
    root = ET.fromstring(xml)
    cases = root.iter("testcase")
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    bad: list[Row] = []
    for case in cases:
        kinds = [child.tag for child in case]
        name = f"  {case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        for tag, key in (("failure", "failed"), ("error", "errors")):
            if tag in kinds:
                counts[key] += 1
                element = case.find(tag)
                message = element.get("message") or element.text
                bad.append((name, key.rstrip("s"), first_line(message), case.get("time", "")))
                break
        else:
            counts["skipped" if "skipped" in kinds else "passed"] += 1
    figure = ", ".join(f"{v} {k}" for k, v in counts.items())
    return [("pytest -m gpu", outcome(step), figure, secs), *bad]


CASE = re.compile(r"^(\S[^,]*), batch (\d+): G ([\d,]+) \+ D ([\d,]+) parameters")
MODE = re.compile(
    r"^  (?P<mode>[a-z][\w ()+.-]*?)\s+(?P<ips>\d+\.\d)\s+(?P<x>\d+\.\d\d)\s+"
    r"(?P<pct>-|\d+\.\d%)\s+(?P<mem>-|[\d,]+ MiB)$"
)
SKIPPED = re.compile(r"^  (?P<mode>.+?): skipped \((?P<why>.*)\)$")
PEAK = re.compile(r"^practical peak: ([\d,]+) GFLOP/s")
SCALING = re.compile(r"^Scaling: (.+), ms per step \(img/s\)$")
SCALING_HEAD = re.compile(r"^  resolution\s+(.*)$")
SCALING_ROW = re.compile(r"^  (\d+)\s+(.*)$")


def speed_rows(text: str | None, step: Step | None) -> list[Row]:
    """The step's row, the peak, one row per (case, mode), one per scaling resolution."""
    text = text or ""
    secs = "" if step is None else f"{step.seconds:.1f}"
    head = first_line(text) if text else "no output"
    rows: list[Row] = [("bench_speed --device cuda", outcome(step), head, secs)]
    if step is not None and step.rc not in (0, None):
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if tail and step.rc not in TIMEOUT_CODES:
            rows[0] = (*rows[0][:2], first_line(tail[-1]), secs)
    case, scaling, batches = "", "", []
    for line in text.splitlines():
        if m := PEAK.match(line):
            rows.append(("  fp32 matmul peak", "ok", f"{m[1]} GFLOP/s", ""))
        elif m := CASE.match(line):
            case, scaling = f"{m[1]} b{m[2]}", ""
        elif m := SCALING.match(line):
            scaling, case = m[1], ""
        elif scaling and (m := SCALING_HEAD.match(line)):
            batches = re.findall(r"batch (\d+)", m[1])
        elif scaling and (m := SCALING_ROW.match(line)):
            cells = re.split(r"\s{2,}", m[2].strip())
            figure = ", ".join(f"b{b} {c}" for b, c in zip(batches, cells))
            rows.append((f"  scaling {m[1]}px ({scaling})", "ok", f"ms/step (img/s): {figure}", ""))
        elif case and (m := MODE.match(line)):
            mem = "" if m["mem"] == "-" else f", {m['mem']}"
            figure = f"{m['ips']} img/s, {m['x']}x ref, {m['pct']} of peak{mem}"
            rows.append((f"  {case} {m['mode']}", "ok", figure, ""))
        elif m := SKIPPED.match(line):
            rows.append((f"  {case} {m['mode']}".rstrip(), "skipped", first_line(m["why"]), ""))
    return rows


FID = re.compile(r"^(pytorch-fid|ganrun)\s+FID (\S+)\s+([\d.]+) s")
REL = re.compile(r"^relative FID difference (\S+)")
SPEEDUP = re.compile(r"^speed-up ([\d.]+)x")
SETUP = re.compile(r"^(\w+): (\d+) test vs \d+ train images .*; (.+)$")


def fid_rows(text: str | None, step: Step | None) -> list[Row]:
    secs = "" if step is None else f"{step.seconds:.1f}"
    if step is not None and step.rc is None:
        return [("bench_fid --device cuda", "skipped", step.note, "")]
    text = text or ""
    fid, seconds, rel, speedup, setup = {}, {}, None, None, None
    for line in text.splitlines():
        if m := FID.match(line):
            fid[m[1]], seconds[m[1]] = m[2], m[3]
        elif m := REL.match(line):
            rel = m[1]
        elif m := SPEEDUP.match(line):
            speedup = m[1]
        elif m := SETUP.match(line):
            setup = f"{m[1]}, n={m[2]}, {m[3]}"
    if len(fid) == 2 and rel and speedup:
        figure = (
            f"FID {fid['ganrun']} (ganrun) vs {fid['pytorch-fid']} (pytorch-fid), rel. diff "
            f"{rel}; {speedup}x faster ({seconds['ganrun']} s vs {seconds['pytorch-fid']} s)"
        )
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        figure = first_line(lines[-1]) if lines else "no output"
    rows = [("bench_fid --device cuda", outcome(step), figure, secs)]
    return rows + ([("  images and weights", "ok", setup, "")] if setup else [])


def markdown(rows: list[Row]) -> str:
    header: Row = ("check", "result", "figure", "seconds")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), rule, *map(fmt, rows)])


def read(path: Path) -> str | None:
    return path.read_text(errors="replace") if path.is_file() else None


def table(results: Path) -> str:
    device, steps = read_status(read(results / "status.txt") or "")
    rows = [
        *pytest_rows(read(results / "pytest.xml"), steps.get("tests")),
        *speed_rows(read(results / "bench_speed.txt"), steps.get("bench_speed")),
        *fid_rows(read(results / "bench_fid.txt"), steps.get("bench_fid")),
    ]
    total = sum(s.seconds for s in steps.values())
    title = f"GPU check: {device or 'unknown device'}; {total:.0f} s in all"
    return f"{title}\n\n{markdown(rows)}\n"


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python scripts/gpu_table.py <results folder of scripts/gpu_check.sh>")
    results = Path(argv[0])
    text = table(results)
    (results / "table.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main(sys.argv[1:])

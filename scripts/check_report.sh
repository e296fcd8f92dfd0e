#!/usr/bin/env bash
# Render a ganrun HTML report in headless Chromium and save a screenshot to look at.
#
#   scripts/check_report.sh [RUN_OR_SWEEP_FOLDER] [SCREENSHOT.png]
#
# Without a folder it trains a 4-step smoke run (plots and time-lapse on) in a temporary folder
# first. It writes FOLDER/report.html (`ganrun report`), then the screenshot (default
# FOLDER/report.png, 1200 x 2000 px), and prints how long each part took. Chromium: Debian's
# `apt-get install -y chromium`; the flags keep it offline, GPU-less and profile-less.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$repo/.venv/bin/python}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [[ -z "$browser" ]]; then
    echo "chromium is not installed (apt-get install -y chromium)" >&2
    exit 2
fi

folder="${1:-}"
if [[ -z "$folder" ]]; then
    folder="$(mktemp -d)/run"
    echo "training a smoke run into $folder"
    "$py" -m ganrun train debug=smoke trainer.plots=true trainer.timelapse=true \
        trainer.eval_every=2 trainer.eval_samples=200 "hydra.run.dir=$folder" >/dev/null
fi
shot="${2:-$folder/report.png}"

start=$EPOCHREALTIME
"$py" -m ganrun report "$folder"
report_s=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }")

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
start=$EPOCHREALTIME
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --screenshot="$shot" --window-size=1200,2000 "file://$(realpath "$folder")/report.html" \
    2>/dev/null
render_s=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }")

echo "report: $(du -h "$folder/report.html" | cut -f1) in ${report_s}s; screenshot $shot in ${render_s}s"

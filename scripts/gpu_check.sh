#!/usr/bin/env bash
# One GPU check, on a CUDA machine, from a checkout, in under 8 minutes:
#   1. every `gpu`-marked test (pytest -m gpu on the test files that carry the marker)
#   2. scripts/bench_speed.py --device cuda
#   3. scripts/bench_fid.py --device cuda --dataset mnist
# then one table (scripts/gpu_table.py) on stdout and in <results>/table.md.
#
#   bash scripts/gpu_check.sh
#
# The machine needs python3 with torch (CUDA) and torchvision, nothing else and no network:
# the other packages come as wheels in .gpu/wheels (made beforehand, elsewhere, by
# scripts/gpu_wheels.sh), installed with pip --no-index into a temp folder; the MNIST files
# for bench_fid.py come in .gpu/data. ganrun runs from this checkout's src/ (the code under
# test, never a stale copy).
#
# Environment (all optional):
#   PYTHON        the interpreter with torch (default python3)
#   GPU_DIR       where the wheels and data are (default .gpu in the repository root)
#   OUT           results folder (default gpu_results/ in the repository root)
#   GPU_SITE      where the wheels are installed (default a fresh temp folder)
#   TESTS_S SPEED_S FID_S   time limits of the three steps in seconds (200, 160, 80: with the
#                 install and 5 s grace each, under 8 minutes)
#   SPEED_ARGS    bench_speed.py arguments besides --device (default "--steps 100 --warmup 20
#                 --scaling-steps 20"; SPEED_ARGS= for its own defaults)
#   FID_N         images per set for bench_fid.py (5000)
# Exit status: 0 all three ran and passed; 1 a step failed or ran out of time; 3 no CUDA
# device; 4 the wheels do not fit this Python; 5 a package is missing.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
PYTHON="${PYTHON:-python3}"
GPU_DIR="${GPU_DIR:-$REPO/.gpu}"
RESULTS="${OUT:-$REPO/gpu_results}"
TESTS_S="${TESTS_S:-200}"
SPEED_S="${SPEED_S:-160}"
FID_S="${FID_S:-80}"
FID_N="${FID_N:-5000}"
SPEED_ARGS="${SPEED_ARGS---steps 100 --warmup 20 --scaling-steps 20}"  # set but empty: the defaults
STATUS="$RESULTS/status.txt"

say() { echo "gpu_check.sh: $*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  say "no $PYTHON on this machine; set PYTHON to the python that has torch."
  exit 3
fi
if ! cuda_line="$("$PYTHON" - 2>&1 <<'EOF'
import platform, sys
try:
    import torch
except ImportError:
    sys.exit("torch is not installed for this python")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)")
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"python {platform.python_version()}")
EOF
)"; then
  say "${cuda_line##*$'\n'}. This check needs a machine with an NVIDIA GPU; here, run the CPU" \
      "tests instead: .venv/bin/pytest -q"
  exit 3
fi
mkdir -p "$RESULTS"
echo "# $cuda_line" > "$STATUS"
echo "GPU check on $cuda_line" >&2

# --- the wheels ---------------------------------------------------------------------------
SITE="${GPU_SITE:-$(mktemp -d /tmp/ganrun-gpu-site.XXXXXX)}"
if compgen -G "$GPU_DIR/wheels/*.whl" >/dev/null; then
  want="$(sed -n 's/^python //p' "$GPU_DIR/wheels/TARGET" 2>/dev/null)"
  have="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [ -n "$want" ] && [ "$want" != "$have" ]; then
    say "the wheels in $GPU_DIR/wheels are for Python $want, this python is $have." \
        "Prepare them again where pip reaches a registry: scripts/gpu_wheels.sh --python $have"
    exit 4
  fi
  if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
       --target "$SITE" "$GPU_DIR"/wheels/*.whl > "$RESULTS/install.txt" 2>&1; then
    say "pip could not install the wheels ($(tail -n 1 "$RESULTS/install.txt")); see" \
        "$RESULTS/install.txt. Prepare them again: scripts/gpu_wheels.sh --python $have"
    exit 4
  fi
fi
export PYTHONPATH="$REPO/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export GANRUN_CACHE="${GANRUN_CACHE:-$SITE/cache}"  # nothing left in the user's cache
[ -d "$GPU_DIR/data" ] && export GANRUN_TEST_DATA="$GPU_DIR/data"

if ! missing="$("$PYTHON" - "$REPO/scripts/gpu_requirements.txt" <<'EOF'
import importlib.metadata as md, sys

names = [ln.split("#", 1)[0].strip() for ln in open(sys.argv[1])]
missing = []
for name in filter(None, names):
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        missing.append(name)
print(" ".join(missing))
sys.exit(1 if missing else 0)
EOF
)"; then
  say "missing on this machine: $missing. Prepare the wheels where pip reaches a registry:" \
      "scripts/gpu_wheels.sh (with --have listing only what this machine has), then carry .gpu/"
  exit 5
fi

# --- the three steps ----------------------------------------------------------------------
step() {  # step NAME LIMIT_S OUTPUT_FILE COMMAND...: runs it, appends "NAME rc seconds"
  local name="$1" limit="$2" out="$3" t0 rc ms
  shift 3
  echo "== $name (limit ${limit}s): $*" >&2
  t0="$(date +%s%N)"
  timeout --kill-after=5 "$limit" "$@" > "$out" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s %d %d.%d\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100)) >> "$STATUS"
  tail -n 3 "$out" >&2
}

# the test files that mark tests `gpu` (a decorator, or the module's pytestmark)
GPU_MARK='^\s*(@?pytest\.mark\.gpu\b|pytestmark\s*=.*pytest\.mark\.gpu\b)'
mapfile -t gpu_tests < <(grep -l -E "$GPU_MARK" tests/test_*.py)
step tests "$TESTS_S" "$RESULTS/pytest.txt" "$PYTHON" -m pytest -m gpu -q -rfEs \
  --junitxml="$RESULTS/pytest.xml" "${gpu_tests[@]}"
# shellcheck disable=SC2086  # SPEED_ARGS is split on spaces on purpose
step bench_speed "$SPEED_S" "$RESULTS/bench_speed.txt" "$PYTHON" scripts/bench_speed.py \
  --device cuda $SPEED_ARGS
if [ -f "$GPU_DIR/data/MNIST/raw/train-images-idx3-ubyte.gz" ]; then
  step bench_fid "$FID_S" "$RESULTS/bench_fid.txt" "$PYTHON" scripts/bench_fid.py \
    --device cuda --dataset mnist --data-root "$GPU_DIR/data" --n "$FID_N"
else
  echo "bench_fid skip 0 no MNIST files in $GPU_DIR/data (scripts/gpu_wheels.sh copies them)" >> "$STATUS"
fi

"$PYTHON" scripts/gpu_table.py "$RESULTS"
! grep -vq -E '^(#|[a-z_]+ (0|skip) )' "$STATUS"

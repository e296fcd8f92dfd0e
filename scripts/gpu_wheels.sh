#!/usr/bin/env bash
# Prepare, on a machine that reaches a package registry, what scripts/gpu_check.sh needs on a
# GPU machine that reaches none and has only torch and torchvision: the wheels of
# scripts/gpu_requirements.txt (pinned to this venv's versions, built for the GPU machine's
# Python and platform) and the MNIST files bench_fid.py reads.
#
#   scripts/gpu_wheels.sh                        # -> .gpu/wheels/*.whl, .gpu/data/MNIST/raw
#   scripts/gpu_wheels.sh --python 3.11          # the GPU machine's python3 is 3.11
#   scripts/gpu_wheels.sh --have "scipy scikit-learn joblib threadpoolctl"   # it has these
#
# Options:
#   --python X.Y      the GPU machine's Python (default 3.12)
#   --have "NAMES"    distributions the GPU machine already has: left out (a smaller folder)
#   --out DIR         default .gpu in the repository root (git-ignored)
#   --data-root DIR   the folder holding MNIST/raw (default $GANRUN_TEST_DATA, ../shared/data)
#   --no-data         no MNIST copy: gpu_check.sh then skips bench_fid.py
#   --platform TAG    a wheel platform tag to accept (repeatable; default manylinux x86_64 up
#                     to glibc 2.28)
#
# Wheels already in the folder at the pinned version are kept (a rerun downloads only what
# changed); other versions of a listed name, and names no longer listed, are removed (pip
# refuses two versions of one name). A package with no wheel on the registry (an sdist only,
# e.g. antlr4-python3-runtime) is built here with `pip wheel`, which must give a pure-Python
# wheel. .gpu/wheels/TARGET records the Python, the platforms and name==version of each.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"  # the venv whose versions are pinned
TARGET_PY=3.12
HAVE=""
OUT="$REPO/.gpu"
DATA_ROOT="${GANRUN_TEST_DATA:-}"
COPY_DATA=1
PLATFORMS=()

die() { echo "gpu_wheels.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --python) TARGET_PY="$2"; shift 2 ;;
    --have) HAVE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --data-root) DATA_ROOT="$2"; shift 2 ;;
    --no-data) COPY_DATA=0; shift ;;
    --platform) PLATFORMS+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$TARGET_PY" =~ ^3\.[0-9]+$ ]] || die "--python $TARGET_PY: give the GPU machine's Python as X.Y, e.g. 3.12"
[ -x "$PYTHON" ] || die "$PYTHON not found: set PYTHON to the venv's python (its versions are pinned)"
if [ ${#PLATFORMS[@]} -eq 0 ]; then
  PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64
             manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)
fi
ABI="cp${TARGET_PY/./}"
WHEELS="$OUT/wheels"
mkdir -p "$WHEELS"

# name==version of every listed distribution not in --have, from this venv
PINS="$("$PYTHON" - "$REPO/scripts/gpu_requirements.txt" "$HAVE" <<'EOF'
import importlib.metadata as md, re, sys

canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {canon(n) for n in sys.argv[2].split()}
for line in open(sys.argv[1]):
    name = line.split("#", 1)[0].strip()
    if not name or canon(name) in have:
        continue
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        sys.exit(f"gpu_wheels.sh: {name} (scripts/gpu_requirements.txt) is not installed in "
                 f"{sys.prefix}; install the project's dev extras there first")
EOF
)"

canon() { echo "$1" | sed -E 's/[-_.]+/-/g' | tr 'A-Z' 'a-z'; }  # PEP 503 names
wheel_of() {  # the wheel file in $WHEELS of name==version, if there is one
  local name="${1%%==*}" version="${1#*==}" f base rest
  for f in "$WHEELS"/*.whl; do
    [ -e "$f" ] || continue
    base="$(basename "$f")"
    [ "$(canon "${base%%-*}")" = "$(canon "$name")" ] || continue
    rest="${base#*-}"
    [ "${rest%%-*}" = "$version" ] && { echo "$f"; return 0; }
  done
  return 1
}

platform_args=()
for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done

keep=()
for pin in $PINS; do
  if f="$(wheel_of "$pin")"; then
    keep+=("$f"); echo "have      $pin"; continue
  fi
  if "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PY" \
       --implementation cp --abi "$ABI" "${platform_args[@]}" -d "$WHEELS" "$pin" >/dev/null 2>&1; then
    echo "download  $pin"
  else
    tmp="$(mktemp -d)"
    "$PYTHON" -m pip wheel -q --no-deps -w "$tmp" "$pin" >/dev/null 2>&1 \
      || die "$pin: no wheel for Python $TARGET_PY on ${PLATFORMS[*]}, and pip wheel could not build one"
    built="$(ls "$tmp"/*.whl)"
    case "$built" in
      *-py3-none-any.whl|*-py2.py3-none-any.whl) mv "$built" "$WHEELS/"; echo "built     $pin (pure Python)" ;;
      *) die "$pin: no wheel for Python $TARGET_PY on the registry, and the local build $(basename "$built") is not pure Python" ;;
    esac
    rm -rf "$tmp"
  fi
  keep+=("$(wheel_of "$pin")")
done

for f in "$WHEELS"/*.whl; do  # other versions, names no longer listed, --have names
  [ -e "$f" ] || continue
  printf '%s\n' "${keep[@]}" | grep -qxF "$f" || { rm -f "$f"; echo "removed   $(basename "$f")"; }
done

{
  echo "python $TARGET_PY"
  echo "platforms ${PLATFORMS[*]}"
  echo "have $HAVE"
  for pin in $PINS; do echo "wheel $pin"; done
} > "$WHEELS/TARGET"

if [ "$COPY_DATA" = 1 ]; then
  found=""
  for root in "$DATA_ROOT" "$REPO/../shared/data" /work/shared/data; do
    [ -n "$root" ] && [ -f "$root/MNIST/raw/train-images-idx3-ubyte.gz" ] && { found="$root"; break; }
  done
  if [ -n "$found" ]; then
    mkdir -p "$OUT/data/MNIST/raw"
    cp -f "$found"/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "$OUT/data/MNIST/raw/"
    echo "data      MNIST/raw from $found"
  else
    echo "data      no MNIST/raw found (--data-root): gpu_check.sh will skip bench_fid.py"
  fi
fi

size_kib="$(du -sk "$OUT" | cut -f1)"
echo "$OUT: $(ls "$WHEELS"/*.whl 2>/dev/null | wc -l) wheels, $((size_kib / 1024)) MiB in all (Python $TARGET_PY)"
if [ "$size_kib" -gt $((56 * 1024)) ]; then
  echo "note: over 56 MiB; a device tool that carries 64 MiB with the working tree needs" \
       "--have for what the GPU machine already has (see the README's GPU check section)"
fi

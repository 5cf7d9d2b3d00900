#!/usr/bin/env bash
# fedids vs scikit-learn RandomForest benchmark. Works from any directory.
#
#   bench/vs_sklearn.sh [--no-build] [vs_sklearn.py options...]
#
# 1. creates bench/.venv (if missing) and installs the pinned bench/requirements.txt into it;
# 2. builds fedids with `cargo build --release` in the repository root (skip with --no-build);
# 3. runs bench/vs_sklearn.py, which runs both tools and writes bench/runs/<date>-<host>/.
# Options after the script's own are passed to vs_sklearn.py, e.g. --quick, --workloads
# nsl-binary,kdd99-5class, --trees 50, --keep-tmp. See bench/README.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
VENV="$BENCH_DIR/.venv"
REQS="$BENCH_DIR/requirements.txt"
PYTHON="${PYTHON:-python3}"
THREADS=2

build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help)
      build=0
      sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      echo
      args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
# Pass --threads N on to this script's thread variables as well.
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --threads) THREADS="${args[$((i + 1))]:-$THREADS}" ;;
    --threads=*) THREADS="${args[$i]#--threads=}" ;;
  esac
done

export VS_SKLEARN_COMMAND="bench/vs_sklearn.sh${*:+ $*}"

# 1. Python environment.
if [[ ! -x "$VENV/bin/python" ]]; then
  if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "vs_sklearn.sh: $PYTHON is $("$PYTHON" --version 2>&1); Python 3.11+ is needed" \
         "(set PYTHON=...)" >&2
    exit 1
  fi
  echo "creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  rm -f "$VENV/.requirements.sha256"
fi
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
have="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
  echo "installing $REQS into $VENV" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQS"
  echo "$want" > "$VENV/.requirements.sha256"
fi

# 2. fedids release build (not timed; the benchmark times only what the tools report).
if [[ "$build" == 1 ]]; then
  echo "building fedids: cargo build --release (in $ROOT)" >&2
  (cd "$ROOT" && cargo build --release)
fi

# 3. The benchmark. Every child gets the same thread limits.
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" \
       VECLIB_MAXIMUM_THREADS="$THREADS" NUMEXPR_NUM_THREADS="$THREADS" \
       RAYON_NUM_THREADS="$THREADS"
exec "$VENV/bin/python" "$BENCH_DIR/vs_sklearn.py" ${args[@]+"${args[@]}"}

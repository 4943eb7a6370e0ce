#!/usr/bin/env bash
# The Python binding's bench (bench_python.py) against an s3rver started here on 127.0.0.1.
#
#   bench/python/run.sh [BUILD_DIR] [--only readinto|epoch|checkpoint]...
#   FILES=2000 SAMPLE_KB=256 CKPT_MB=1024 READ_MB=512 ROUNDS=3 bench/python/run.sh build
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$root/build}}
[ $# -gt 0 ] && shift
case "$build" in /*) ;; *) build="$root/$build" ;; esac
python=${PYTHON:-$(sed -n 's/^Python3_EXECUTABLE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)}
python=${python:-python3}
[ -d "$build/python/stor" ] || { echo "python bench: $build/python/stor not built (cmake --build $build --target stor_python)" >&2; exit 1; }

source "$root/bench/lib/s3rver.sh"
require_s3rver "python bench"
work=$(mktemp -d "${TMPDIR:-/tmp}/stor-py-bench-XXXXXX")
cleanup() {
  stop_s3rver
  rm -rf "$work"
}
trap cleanup EXIT
start_s3rver "$work/s3"
PYTHONPATH="$build/python" "$python" "$root/bench/python/bench_python.py" --endpoint "$S3RVER_ENDPOINT" "$@"

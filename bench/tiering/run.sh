#!/usr/bin/env bash
# Epoch-style read of a data set through an S3-linked namespace (s3rver on 127.0.0.1, started
# here): epoch 1 (cold) vs epoch 2 (cached) vs copying everything locally first.
#
#   bench/tiering/run.sh [BUILD_DIR]                 (default: build)
#   FILES=2000 SIZE=262144 THREADS=8 bench/tiering/run.sh build-tier
#   EXTRA=--no-durable-fetch bench/tiering/run.sh build    (fetched copies not fdatasync'ed)
#
# Exit status 3 when epoch 2 is not at least 3x faster than epoch 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$root/build}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
FILES=${FILES:-2000}
SIZE=${SIZE:-262144}
THREADS=${THREADS:-8}
EXTRA=${EXTRA:-}

bench="$build/bench/tiering/bench_tiering"
s3rver_js="$root/tools/node/node_modules/s3rver/bin/s3rver.js"
command -v node >/dev/null || { echo "tiering bench: node is not installed" >&2; exit 1; }
[ -x "$bench" ] || { echo "tiering bench: $bench not built (cmake --build $build --target bench_tiering)" >&2; exit 1; }
[ -f "$s3rver_js" ] || { echo "tiering bench: run npm install --prefix tools/node first" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/stor-tier-bench-XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
mkdir -p "$work/s3"
# s3rver's list tokens use DES, which OpenSSL 3 keeps in the legacy provider.
node --openssl-legacy-provider "$s3rver_js" -d "$work/s3" -a 127.0.0.1 -p "$port" --silent >/dev/null &
pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
"$bench" --endpoint "http://127.0.0.1:$port" --files "$FILES" --size "$SIZE" --threads "$THREADS" --work-dir "$work/local" $EXTRA

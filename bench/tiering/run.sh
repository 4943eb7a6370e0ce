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

source "$root/bench/lib/s3rver.sh"
s3rver_bench_init "tiering bench" "$build" bench/tiering/bench_tiering stor-tier-bench
start_s3rver "$work/s3"
"$bench" --endpoint "$S3RVER_ENDPOINT" --files "$FILES" --size "$SIZE" --threads "$THREADS" --work-dir "$work/local" $EXTRA

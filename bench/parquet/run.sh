#!/usr/bin/env bash
# A Parquet table written by DuckDB (tests/fixtures/parquet_gen.js), uploaded to s3rver (started
# here), read query-style three ways by bench_parquet (see bench_parquet.cc).
#
#   bench/parquet/run.sh [BUILD_DIR]                        (default: build)
#   FILES=200 COLUMNS=20 ROWS=49152 ROW_GROUP=16384 bench/parquet/run.sh build
#   SMALL_OBJECT=8M THREADS=4 READ=c1,c6,c11 bench/parquet/run.sh
#
# Exit status 3 when the parquet path misses its targets (bytes <= 1.3x the needed chunks, wall
# time <= 0.6x naive).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$root/build}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
FILES=${FILES:-200}
COLUMNS=${COLUMNS:-20}
ROWS=${ROWS:-49152}
ROW_GROUP=${ROW_GROUP:-16384}
THREADS=${THREADS:-4}
READ=${READ:-c1,c6,c11}
SMALL_OBJECT=${SMALL_OBJECT:-1M}
EXTRA=${EXTRA:-}

source "$root/bench/lib/s3rver.sh"
s3rver_bench_init "parquet bench" "$build" bench/parquet/bench_parquet stor-parquet-bench
mkdir -p "$work/files"
t0=$(date +%s)
node "$root/tests/fixtures/parquet_gen.js" write "$work/files" "$FILES" "$COLUMNS" "$ROWS" "$ROW_GROUP" part- >/dev/null
echo "DuckDB wrote $FILES files x $COLUMNS columns x $ROWS rows (row groups of $ROW_GROUP) in $(( $(date +%s) - t0 )) s"
start_s3rver "$work/s3"
"$bench" --endpoint "$S3RVER_ENDPOINT" --dir "$work/files" --threads "$THREADS" --columns "$READ" --small-object "$SMALL_OBJECT" $EXTRA

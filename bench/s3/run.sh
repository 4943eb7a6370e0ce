#!/usr/bin/env bash
# S3 throughput: stor's client vs the AWS SDK for JavaScript v3, both against one s3rver started
# here on 127.0.0.1. Upload (multipart) and download (ranged GETs) of one object with 1, 4 and 16
# connections; prints MiB/s and the stor/SDK ratio for each.
#
#   bench/s3/run.sh [BUILD_DIR]      (default: build)
#   SIZE=1073741824 CONNECTIONS="1 4 16" PART_SIZE=8388608 REPEAT=1 bench/s3/run.sh build
#
# Needs node and `npm install --prefix tools/node` (s3rver, @aws-sdk/client-s3).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$root/build}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
SIZE=${SIZE:-1073741824}
CONNECTIONS=${CONNECTIONS:-"1 4 16"}
PART_SIZE=${PART_SIZE:-8388608}
REPEAT=${REPEAT:-1}

sdk="$root/bench/s3/sdk_bench.js"
source "$root/bench/lib/s3rver.sh"
s3rver_bench_init "s3 bench" "$build" bench/s3/s3_bench stor-s3-bench
start_s3rver "$work/data"
endpoint="$S3RVER_ENDPOINT"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export NODE_NO_WARNINGS=1  # the SDK's "node >= 22 soon" notice

common=(--endpoint "$endpoint" --bucket bench --part-size "$PART_SIZE")
"$bench" "${common[@]}" --key download-source --op upload --size "$SIZE" --connections 16 --create-bucket >/dev/null

mibps() { sed -n 's/.*MiBps=\([0-9.]*\).*/\1/p'; }
best() { sort -g | tail -1; }  # best of REPEAT runs, for each side alike

printf "\nS3 throughput, object %d MiB, part %d MiB, s3rver on 127.0.0.1 (MiB/s, best of %d)\n" \
  $((SIZE >> 20)) $((PART_SIZE >> 20)) "$REPEAT"
printf "%-9s %5s %10s %10s %7s\n" op conns stor sdk ratio
for n in $CONNECTIONS; do
  for op in upload download; do
    stor_runs=() sdk_runs=()
    for r in $(seq 1 "$REPEAT"); do
      if [ "$op" = upload ]; then key_stor="up-stor-$n-$r" key_sdk="up-sdk-$n-$r"; else key_stor=download-source key_sdk=download-source; fi
      stor_runs+=("$("$bench" "${common[@]}" --key "$key_stor" --op "$op" --size "$SIZE" --connections "$n" | mibps)")
      sdk_runs+=("$(node "$sdk" "${common[@]}" --key "$key_sdk" --op "$op" --size "$SIZE" --connections "$n" | mibps)")
      if [ "$op" = upload ]; then rm -rf "$work/data/bench/$key_stor"* "$work/data/bench/$key_sdk"*; fi
    done
    s=$(printf "%s\n" "${stor_runs[@]}" | best)
    k=$(printf "%s\n" "${sdk_runs[@]}" | best)
    ratio=$(awk -v a="$s" -v b="$k" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf "%-9s %5s %10s %10s %6sx\n" "$op" "$n" "$s" "$k" "$ratio"
  done
done

#!/usr/bin/env bash
# Propagation delay of the S3 link (background sync vs bucket notifications) and an export
# burst vs direct PUTs, in one run (bench_sync.cc prints the ratios).
#
#   bench/tiering/sync.sh [BUILD_DIR]          RGW (tests/fixtures/rgw.sh, needs root and Ceph) when
#                                              it can start, with notifications; else s3rver without
#   FILES=1000 SIZE=4096 ROUNDS=5 INTERVAL_MS=1000 THREADS=8 SERVER=s3rver bench/tiering/sync.sh build
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$root/build}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
bench="$build/bench/tiering/bench_tiering_sync"
[ -x "$bench" ] || { echo "tiering sync bench: $bench not built (cmake --build $build --target bench_tiering_sync)" >&2; exit 1; }
args=(--files "${FILES:-1000}" --size "${SIZE:-4096}" --rounds "${ROUNDS:-5}" --interval-ms "${INTERVAL_MS:-1000}"
      --threads "${THREADS:-8}")

work=$(mktemp -d "${TMPDIR:-/tmp}/stor-tiersync-bench-XXXXXX")
source "$root/bench/lib/s3rver.sh"
rgw_started=""
cleanup() {
  [ -n "$rgw_started" ] && "$root/tests/fixtures/rgw.sh" stop "$work/rgw" >/dev/null 2>&1 || true
  stop_s3rver
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${SERVER:-rgw}" = rgw ] && "$root/tests/fixtures/rgw.sh" start "$work/rgw" 0 >"$work/rgw.log" 2>&1; then
  rgw_started=1
  echo "server: Ceph RGW (tests/fixtures/rgw.sh), notifications on"
  "$bench" --endpoint "$(cat "$work/rgw/endpoint")" --access-key STORTESTRGWACCESSKEY \
    --secret-key storTestRgwSecretKey0123456789abcdefABCD --notify --work-dir "$work/local" "${args[@]}"
else
  [ "${SERVER:-rgw}" = rgw ] && echo "RGW did not start ($(cat "$work/rgw/skip" 2>/dev/null || tail -n 1 "$work/rgw.log")): s3rver, no notifications"
  require_s3rver "tiering sync bench"
  start_s3rver "$work/s3"
  "$bench" --endpoint "$S3RVER_ENDPOINT" --work-dir "$work/local" "${args[@]}"
fi

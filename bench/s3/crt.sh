#!/usr/bin/env bash
# stor vs the AWS Common Runtime S3 client (aws-c-s3, through Debian's python3-awscrt), both
# against the same server in the same run: 1 GiB GET and PUT through files (stctl cp vs
# recv_filepath/send_filepath, MiB/s and CPU-s/GiB), 500 x 64 KiB GETs with 16 in flight
# (objects/s) and 4 KiB GET latency (p50/p99). Prints the stor/aws-c-s3 ratio of each.
#
#   bench/s3/crt.sh [BUILD_DIR]                 (default: build)
#   SERVERS="rgw s3rver" SIZE=1073741824 REPEAT=3 API=batch STOR_SET="s3.target_gbps=20" bench/s3/crt.sh
#
# Debian's awscrt (0.16) connects to port 80 whatever the Host header says, so the servers are
# started one after the other on 127.0.0.1:80 (needs root, as does the RGW fixture). rgw: Ceph
# RADOS Gateway (tests/fixtures/rgw.sh, stock beast frontend); s3rver: node, as in run.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$root/build}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
SERVERS=${SERVERS:-"rgw s3rver"}
SIZE=${SIZE:-1073741824}
REPEAT=${REPEAT:-3}
API=${API:-batch}
WORKLOADS=${WORKLOADS:-get,put,small,latency}
PORT=80

/usr/bin/python3 -c 'import awscrt.s3' 2>/dev/null || { echo "crt bench: python3-awscrt is not installed" >&2; exit 1; }
for t in tools/stctl/stctl bench/s3/s3_bench; do
  [ -x "$build/$t" ] || { echo "crt bench: $build/$t not built (cmake --build $build --target stctl s3_bench)" >&2; exit 1; }
done
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "crt bench: something already listens on 127.0.0.1:$PORT" >&2
  exit 1
fi
source "$root/bench/lib/s3rver.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/stor-crt-bench-XXXXXX")
rgw_up=""
cleanup() {
  stop_s3rver
  if [ -n "$rgw_up" ]; then "$root/tests/fixtures/rgw.sh" stop "$work/rgw" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

extra=()
for kv in ${STOR_SET:-}; do extra+=(--stor-set "$kv"); done
compare() {
  /usr/bin/python3 "$root/bench/s3/crt_compare.py" --server "$1" --endpoint "http://127.0.0.1:$PORT" \
    --build "$build" --size "$SIZE" --repeat "$REPEAT" --api "$API" --workloads "$WORKLOADS" "${extra[@]}" "${@:2}"
}

for server in $SERVERS; do
  case "$server" in
    rgw)
      RGW_MEMSTORE_BYTES=$((SIZE * 3 + (1 << 30))) "$root/tests/fixtures/rgw.sh" start "$work/rgw" "$PORT" >/dev/null
      rgw_up=1
      AWS_ACCESS_KEY_ID=STORTESTRGWACCESSKEY AWS_SECRET_ACCESS_KEY=storTestRgwSecretKey0123456789abcdefABCD \
        AWS_REGION=us-east-1 compare "RGW (Ceph 16, beast, stock settings)" \
        --gc-cmd "radosgw-admin -c $work/rgw/ceph.conf gc process --include-all"
      "$root/tests/fixtures/rgw.sh" stop "$work/rgw" >/dev/null
      rgw_up=""
      ;;
    s3rver)
      start_s3rver "$work/s3rver" "$PORT"
      AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 compare s3rver
      stop_s3rver
      ;;
    *) echo "crt bench: unknown server $server (rgw, s3rver)" >&2; exit 2 ;;
  esac
done

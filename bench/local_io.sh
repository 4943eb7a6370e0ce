#!/usr/bin/env bash
# Local I/O: stor (stctl bench, io_uring engine, O_DIRECT) against fio (ioengine=io_uring,
# direct=1) on the same file, same block size and queue depth, in the same run. Prints ratios.
# Each pair runs REPS times (default 3), alternating fio and stor, and the medians are compared,
# so a drift of the (virtual) disk during the run hits both sides alike.
#   bench/local_io.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
SECS=${2:-10}
REPS=${REPS:-3}
STCTL=$BUILD_DIR/tools/stctl/stctl
command -v fio >/dev/null || { echo "fio is missing: apt-get install fio" >&2; exit 1; }
[ -x "$STCTL" ] || { echo "build stctl first (scripts/build.sh)" >&2; exit 1; }

DIR=$(mktemp -d "${BENCH_DIR:-/var/tmp}/stor-bench-XXXXXX")
trap 'rm -rf "$DIR"' EXIT
FILE=$DIR/data
SIZE=2G
QD=32
# Lay the file out once with real data (not sparse), so both tools read the same blocks.
fio --name=layout --filename="$FILE" --size=$SIZE --rw=write --bs=1M --ioengine=psync --direct=1 \
    --output-format=terse >/dev/null

fio_iops() {  # rw bs -> IOPS
  fio --name=ref --filename="$FILE" --size=$SIZE --rw="$1" --bs="$2" --iodepth=$QD --ioengine=io_uring \
      --direct=1 --time_based --runtime="$SECS" --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(j["read"]["iops"] if j["read"]["iops"] else j["write"]["iops"])'
}
stor_iops() {  # rw bs -> IOPS
  "$STCTL" --json --engine io_uring bench --rw "$1" --bs "$2" --qd $QD --size $SIZE --runtime "$SECS" "$FILE" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["iops"])'
}

printf '%-28s %12s %12s %8s\n' "workload (QD $QD, O_DIRECT)" "fio" "stor" "stor/fio"
echo "(medians of $REPS alternating runs of $SECS s each)"
for spec in "randread 4k IOPS" "read 1M MiB/s"; do
  set -- $spec
  rw=$1 bs=$2 unit=$3
  f_all="" s_all=""
  for _ in $(seq 1 "$REPS"); do
    f_all="$f_all $(fio_iops "$rw" "$bs")"
    s_all="$s_all $(stor_iops "$rw" "$bs")"
  done
  python3 - "$rw" "$bs" "$unit" "$f_all" "$s_all" <<'PY'
import statistics, sys
rw, bs, unit = sys.argv[1], sys.argv[2], sys.argv[3]
f = statistics.median(float(x) for x in sys.argv[4].split())
s = statistics.median(float(x) for x in sys.argv[5].split())
# With 1 MiB blocks IOPS equals MiB/s, so both rows print the tools' own numbers.
print(f"{rw + ' ' + bs + ' (' + unit + ')':<28} {f:12.0f} {s:12.0f} {s/f:8.2f}x")
PY
done

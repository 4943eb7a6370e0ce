#!/usr/bin/env bash
# stor vs plain ROMIO, same program, same run: bench_mpiio on 4 ranks with libstor_mpiio.so
# preloaded writes/reads a plain local file (ROMIO) and stor: files (nvme, and lustre when the
# backend is built: the one-process mount, and a `stctl cluster` of stor-mds + 4 stor-targets
# where every rank mounts the file system itself), then prints MiB/s and the ratio against ROMIO.
# CLUSTER=0 leaves the cluster out.
#   bench/mpiio/run_bench.sh [BUILD_DIR (default build)] [bench_mpiio options, e.g. -b 8388608 -s 8]
#   BENCH=bench_mpiio_async bench/mpiio/run_bench.sh [BUILD_DIR] [-w BYTES -r RECORDS ...]
#     (nonblocking write + compute overlap, write_ordered appends; see bench_mpiio_async.c)
#   BENCH=bench_mpiio_darray bench/mpiio/run_bench.sh [BUILD_DIR] [-g G -k K -i REPS]
#     (collective write/read through a 3-D CYCLIC(k) x CYCLIC(k) x NONE darray view)
#   BENCH=bench_mpiio_atomic bench/mpiio/run_bench.sh [BUILD_DIR] [-x XFER -n OPS -s SLOTS -i REPS]
#     (atomic mode: overlapping independent writes under byte-range locks)
#   BENCH=bench_mpiio_ext32 bench/mpiio/run_bench.sh [BUILD_DIR] [-b BLOCK -t XFER -i REPS]
#     (external32 vs native views, write_at_all/read_at_all of doubles)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd); shift || true
lib=$build/mpiio/libstor_mpiio.so
bench=$build/bench/mpiio/${BENCH:-bench_mpiio}
stctl=$build/tools/stctl/stctl
for f in "$lib" "$bench"; do [ -e "$f" ] || { echo "missing $f: build targets stor_mpiio ${BENCH:-bench_mpiio}" >&2; exit 1; }; done
work=${BENCH_DIR:-/tmp/stor-bench-mpiio}
rm -rf "$work"; mkdir -p "$work"
targets=("$work/romio.bin" "stor:nvme://$work/stor.bin")
if [ -x "$stctl" ] && "$stctl" mkfs -t 4 "$work/fs" >/dev/null 2>&1; then
  targets+=("stor:lustre://$work/fs/stor.bin")
fi
genv=(-genv LD_PRELOAD "$lib")
if [ "${CLUSTER:-1}" != 0 ] && [ -x "$build/tools/stor-mds/stor-mds" ]; then
  trap '"$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  out=$("$stctl" cluster start "$work/cluster" --osts 4 --no-root-squash)  # tests run as root in CI
  uri=$(printf '%s\n' "$out" | grep '^lustre://')
  targets+=("stor:${uri}stor.bin")
  genv+=(-genv STOR_LUSTRE_KEY_FILE "$work/cluster/cluster.key")
fi
mpiexec.mpich -n "${NPROCS:-4}" -hosts 127.0.0.1 "${genv[@]}" "$bench" "$@" "${targets[@]}"
if [ "${CLUSTER:-1}" != 0 ] && [ -x "$build/tools/stor-mds/stor-mds" ]; then
  "$stctl" cluster stop "$work/cluster" >/dev/null
  trap - EXIT
fi
rm -rf "$work"

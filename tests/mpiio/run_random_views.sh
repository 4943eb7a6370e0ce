#!/usr/bin/env bash
# mpiio_random_views on 4 ranks through ROMIO (local file) and through libstor_mpiio (stor:
# file); the files must be byte-identical.
#   run_random_views.sh MPIEXEC PROGRAM LIBSTOR_MPIIO STCTL nvme|lustre WORKDIR [SEED]
set -euo pipefail
mpiexec=$1 prog=$2 lib=$3 stctl=$4 mode=$5 work=$6 seed=${7:-12345}
rm -rf "$work"
mkdir -p "$work"
run() { "$mpiexec" -n 4 -hosts 127.0.0.1 "$@"; }
run "$prog" "$work/romio.bin" "$work/romio.dump" "$seed"
case "$mode" in
  nvme) target="stor:nvme://$work/stor.bin" ;;
  lustre) "$stctl" mkfs -t 4 -c 4 -S 64K "$work/fs" >/dev/null; target="stor:lustre://$work/fs/stor.bin" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
run -genv LD_PRELOAD "$lib" "$prog" "$target" "$work/stor.dump" "$seed"
cmp "$work/romio.bin" "$work/romio.dump"
cmp "$work/romio.dump" "$work/stor.dump"
echo "byte-identical: OK"

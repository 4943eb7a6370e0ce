#!/usr/bin/env bash
# Runs mpiio_async_shared (nonblocking I/O, split collectives, shared file pointers) on NP ranks
# through plain ROMIO on a local file, then through libstor_mpiio (LD_PRELOAD) on a stor: file,
# and compares the two files (and what each run read back) byte for byte.
#   run_async_shared.sh MPIEXEC NP PROGRAM LIBSTOR_MPIIO STCTL nvme|lustre WORKDIR
set -euo pipefail
mpiexec=$1 np=$2 prog=$3 lib=$4 stctl=$5 mode=$6 work=$7
rm -rf "$work"
mkdir -p "$work"
run() { "$mpiexec" -n "$np" -hosts 127.0.0.1 "$@"; }

echo "== ROMIO on $work/romio.bin ($np ranks)"
run "$prog" "$work/romio.bin" "$work/romio.dump" "$work/romio.scratch"
cmp "$work/romio.bin" "$work/romio.dump"

case "$mode" in
  nvme) target="stor:nvme://$work/stor.bin" scratch="stor:nvme://$work/stor.scratch" ;;
  lustre)
    "$stctl" mkfs -t 4 "$work/fs" >/dev/null
    target="stor:lustre://$work/fs/stor.bin" scratch="stor:lustre://$work/fs/stor.scratch" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
echo "== stor on $target ($np ranks)"
run -genv LD_PRELOAD "$lib" "$prog" "$target" "$work/stor.dump" "$scratch"
echo "== compare"
cmp "$work/romio.dump" "$work/stor.dump"
case "$mode" in
  nvme)
    cmp "$work/romio.bin" "$work/stor.bin"
    # Without delegation MPI_Init keeps MPI_THREAD_SINGLE: requests must still complete (MPICH
    # polls them from MPI_Wait/Test on the application's thread).
    echo "== stor at MPI_THREAD_SINGLE (STOR_MPIIO_DELEGATION=0)"
    run -genv LD_PRELOAD "$lib" -genv STOR_MPIIO_DELEGATION 0 "$prog" "stor:nvme://$work/single.bin" \
        "$work/single.dump" "stor:nvme://$work/single.scratch"
    cmp "$work/romio.bin" "$work/single.bin" ;;
  lustre)
    "$stctl" cp "lustre://$work/fs/stor.bin" "$work/stor.copy.bin"
    cmp "$work/romio.bin" "$work/stor.copy.bin" ;;
esac
echo "byte-identical: OK"

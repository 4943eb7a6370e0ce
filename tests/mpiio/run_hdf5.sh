#!/usr/bin/env bash
# Runs mpiio_hdf5 (parallel HDF5: contiguous and chunked datasets, collective and independent
# transfers) on NP ranks through plain ROMIO on a local file, then through libstor_mpiio
# (LD_PRELOAD) on a stor: file; the datasets' checksums and the HDF5 files must be identical.
#   run_hdf5.sh MPIEXEC NP PROGRAM LIBSTOR_MPIIO STCTL nvme|lustre WORKDIR
set -euo pipefail
mpiexec=$1 np=$2 prog=$3 lib=$4 stctl=$5 mode=$6 work=$7
rm -rf "$work"
mkdir -p "$work"
run() { "$mpiexec" -n "$np" -hosts 127.0.0.1 "$@"; }

echo "== ROMIO on $work/romio.h5 ($np ranks)"
run "$prog" "$work/romio.h5" "$work/romio.sums"
cat "$work/romio.sums"

case "$mode" in
  nvme) target="stor:nvme://$work/stor.h5" ;;
  lustre)
    "$stctl" mkfs -t 4 "$work/fs" >/dev/null
    target="stor:lustre://$work/fs/stor.h5" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
echo "== stor on $target ($np ranks)"
run -genv LD_PRELOAD "$lib" "$prog" "$target" "$work/stor.sums"
echo "== compare"
cmp "$work/romio.sums" "$work/stor.sums"
# Object modification times are off (H5Pset_obj_track_times), so the whole file is deterministic.
case "$mode" in
  nvme) cmp "$work/romio.h5" "$work/stor.h5" ;;
  lustre)
    "$stctl" cp "lustre://$work/fs/stor.h5" "$work/stor.copy.h5"
    cmp "$work/romio.h5" "$work/stor.copy.h5" ;;
esac
echo "datasets and files identical: OK"

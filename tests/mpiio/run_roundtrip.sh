#!/usr/bin/env bash
# Runs mpiio_roundtrip on 4 ranks through plain ROMIO on a local file, then through
# libstor_mpiio (LD_PRELOAD) on a stor: file, and compares the two files byte for byte.
#   run_roundtrip.sh MPIEXEC PROGRAM LIBSTOR_MPIIO STCTL nvme|lustre WORKDIR
set -euo pipefail
mpiexec=$1 prog=$2 lib=$3 stctl=$4 mode=$5 work=$6
rm -rf "$work"
mkdir -p "$work"
run() { "$mpiexec" -n 4 -hosts 127.0.0.1 "$@"; }

echo "== ROMIO on $work/romio.bin"
run "$prog" "$work/romio.bin" "$work/romio.dump" "$work/no-such-dir/x.bin"
cmp "$work/romio.bin" "$work/romio.dump"

case "$mode" in
  nvme) target="stor:nvme://$work/stor.bin" ;;
  lustre)
    "$stctl" mkfs -t 4 "$work/fs" >/dev/null
    target="stor:lustre://$work/fs/stor.bin" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
echo "== stor on $target"
run -genv LD_PRELOAD "$lib" "$prog" "$target" "$work/stor.dump" "stor:nvme:not-a-uri"
echo "== compare"
cmp "$work/romio.dump" "$work/stor.dump"
case "$mode" in
  nvme) cmp "$work/romio.bin" "$work/stor.bin" ;;
  lustre)
    "$stctl" cp "lustre://$work/fs/stor.bin" "$work/stor.copy.bin"
    cmp "$work/romio.bin" "$work/stor.copy.bin"
    # The striping hints (striping_factor=2, striping_unit=65536) became the file's layout.
    "$stctl" getstripe "$work/fs/stor.bin" | tee "$work/getstripe.txt"
    grep -Eq "stripe_count 2 " "$work/getstripe.txt"
    grep -Eq "stripe_size 64K " "$work/getstripe.txt" ;;
esac
echo "byte-identical: OK"

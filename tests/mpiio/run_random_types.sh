#!/usr/bin/env bash
# mpiio_random_types on 4 and on 3 ranks: through ROMIO on a local file with the classic
# constructors (MPICH 4.0.2's ROMIO aborts on large-count types) and through libstor_mpiio on a
# stor: file with classic and _c constructors mixed; data files and the logged
# get_byte_offset/get_type_extent values must be byte-identical.
#   run_random_types.sh MPIEXEC PROGRAM LIBSTOR_MPIIO STCTL nvme|lustre WORKDIR [SEED]
set -euo pipefail
mpiexec=$1 prog=$2 lib=$3 stctl=$4 mode=$5 work=$6 seed=${7:-4242}
rm -rf "$work"
for n in 4 3; do
  w="$work/n$n"
  mkdir -p "$w"
  run() { "$mpiexec" -n "$n" -hosts 127.0.0.1 "$@"; }
  run "$prog" "$w/romio.bin" "$w/romio.dump" "$w/romio.log" "$seed" classic
  case "$mode" in
    nvme) target="stor:nvme://$w/stor.bin" ;;
    lustre) "$stctl" mkfs -t 4 -c 4 -S 64K "$w/fs" >/dev/null; target="stor:lustre://$w/fs/stor.bin" ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  run -genv LD_PRELOAD "$lib" "$prog" "$target" "$w/stor.dump" "$w/stor.log" "$seed"
  cmp "$w/romio.bin" "$w/romio.dump"
  cmp "$w/romio.dump" "$w/stor.dump"
  cmp "$w/romio.log" "$w/stor.log"
  echo "-n $n: byte-identical: OK"
done

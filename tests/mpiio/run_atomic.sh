#!/usr/bin/env bash
# mpiio_atomic on 4 and 3 ranks through ROMIO (plain file), stor:nvme:// (OFD locks) and, with
# STCTL, stor:lustre:// (one mounting process serialises); then once without atomic mode on
# nvme, which only reports how often the race showed (it may or may not).
#   run_atomic.sh MPIEXEC PROGRAM LIBSTOR_MPIIO WORKDIR [STCTL]
set -euo pipefail
mpiexec=$1 prog=$2 lib=$3 work=$4 stctl=${5:-}
rm -rf "$work"
mkdir -p "$work"
for n in 4 3; do
  run() { "$mpiexec" -n "$n" -hosts 127.0.0.1 "$@"; }
  run "$prog" "$work/romio$n.bin"
  run -genv LD_PRELOAD "$lib" "$prog" "stor:nvme://$work/stor$n.bin"
  if [ -n "$stctl" ]; then
    "$stctl" mkfs -t 4 "$work/fs$n" >/dev/null
    run -genv LD_PRELOAD "$lib" "$prog" "stor:lustre://$work/fs$n/a.bin"
  fi
done
"$mpiexec" -n 4 -hosts 127.0.0.1 -genv LD_PRELOAD "$lib" "$prog" "stor:nvme://$work/nonatomic.bin" nonatomic

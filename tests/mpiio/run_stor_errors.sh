#!/usr/bin/env bash
# libstor_mpiio specifics on 4 ranks (see mpiio_stor_errors.c); with STCTL also the lustre
# delegation cases, with and without delegation.
#   run_stor_errors.sh MPIEXEC PROGRAM LIBSTOR_MPIIO WORKDIR [STCTL]
set -euo pipefail
mpiexec=$1 prog=$2 lib=$3 work=$4 stctl=${5:-}
rm -rf "$work"
mkdir -p "$work"
run() { "$mpiexec" -n 4 -hosts 127.0.0.1 -genv LD_PRELOAD "$lib" "$@"; }
if [ -z "$stctl" ]; then
  run "$prog" "stor:nvme://$work/e.bin" "$work/plain.bin"
  exit 0
fi
"$stctl" mkfs -t 4 "$work/fs" >/dev/null
echo "== delegation on"
run "$prog" "stor:nvme://$work/e.bin" "$work/plain.bin" "stor:lustre://$work/fs/a.bin" delegation
echo "== delegation off (STOR_MPIIO_DELEGATION=0)"
run -genv STOR_MPIIO_DELEGATION 0 "$prog" "stor:nvme://$work/e.bin" "$work/plain.bin" "stor:lustre://$work/fs/b.bin" no-delegation

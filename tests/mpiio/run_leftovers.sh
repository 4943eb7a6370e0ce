#!/usr/bin/env bash
# mpiio_leftovers on N ranks, ending with MPI_Finalize and with PMPI_Finalize.
#   run_leftovers.sh MPIEXEC N PROGRAM LIBSTOR_MPIIO WORKDIR
set -euo pipefail
mpiexec=$1 n=$2 prog=$3 lib=$4 work=$5
rm -rf "$work"
for how in finalize pmpi_finalize; do
  mkdir -p "$work/$how"
  echo "== $n ranks, $how"
  "$mpiexec" -n "$n" -hosts 127.0.0.1 -genv LD_PRELOAD "$lib" "$prog" "stor:nvme://$work/$how" "$how"
done

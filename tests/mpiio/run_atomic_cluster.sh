#!/usr/bin/env bash
# mpiio_atomic on a multi-client lustre:// mount (stctl cluster: stor-mds + 4 stor-targets), every
# rank holding its own handle (delegation off), on 4 and 3 ranks: atomic mode through the extent
# locks of the stor-mds. Then once without atomic mode, which only reports how often the race
# showed (there the ranks' 256 segments each go to the targets as separate requests, so it shows
# in most rounds).
#   run_atomic_cluster.sh MPIEXEC PROGRAM LIBSTOR_MPIIO STCTL WORKDIR
set -euo pipefail
mpiexec=$1 prog=$2 lib=$3 stctl=$4 work=$5
"$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work"
trap '"$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true' EXIT
out=$("$stctl" cluster start "$work/cluster" --osts 4 --no-root-squash)  # tests run as root in CI
uri=$(printf '%s\n' "$out" | grep '^lustre://')
export STOR_LUSTRE_KEY_FILE=$work/cluster/cluster.key
run() {
  local n=$1
  shift
  "$mpiexec" -n "$n" -hosts 127.0.0.1 -genv STOR_MPIIO_DELEGATION 0 -genv STOR_LUSTRE_KEY_FILE "$STOR_LUSTRE_KEY_FILE" \
    -genv LD_PRELOAD "$lib" "$prog" "$@"
}
for n in 4 3; do
  echo "== $n ranks, atomic mode, stor:${uri}atomic$n.bin"
  run "$n" "stor:${uri}atomic$n.bin"
done
echo "== 4 ranks, no atomic mode (reports the race only)"
run 4 "stor:${uri}nonatomic.bin" nonatomic
"$stctl" cluster stop "$work/cluster" >/dev/null
trap - EXIT
echo "cluster atomic mode: OK"

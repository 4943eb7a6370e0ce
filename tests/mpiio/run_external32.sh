#!/usr/bin/env bash
# Runs mpiio_external32 (the "external32" data representation) on NP ranks through plain ROMIO on
# a local file, then through libstor_mpiio (LD_PRELOAD) on a stor: file, and compares the two
# files and the logs (get_type_extent, get_view) byte for byte. The stor run also checks the
# struct/long/long double file that ROMIO cannot write.
# Mode cluster: a `stctl cluster` (1 MDT, 4 OSTs) where every rank mounts (delegation off).
#   run_external32.sh MPIEXEC NP PROGRAM LIBSTOR_MPIIO STCTL nvme|lustre|cluster WORKDIR
set -euo pipefail
mpiexec=$1 np=$2 prog=$3 lib=$4 stctl=$5 mode=$6 work=$7
[ "$mode" = cluster ] && { "$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true; }
rm -rf "$work"
mkdir -p "$work"
env=()
if [ "$mode" = cluster ]; then
  trap '"$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true' EXIT
  out=$("$stctl" cluster start "$work/cluster" --osts 4 --no-root-squash)  # tests run as root in CI
  uri=$(printf '%s\n' "$out" | grep '^lustre://')
  env=(-genv STOR_MPIIO_DELEGATION 0 -genv STOR_LUSTRE_KEY_FILE "$work/cluster/cluster.key")
fi
run() { "$mpiexec" -n "$np" -hosts 127.0.0.1 "${env[@]}" "$@"; }

echo "== ROMIO on $work/romio.bin ($np ranks)"
run "$prog" "$work/romio.bin" romio "$work/romio.log"

case "$mode" in
  nvme) target="stor:nvme://$work/stor.bin" structs="stor:nvme://$work/structs.bin" ;;
  lustre)
    "$stctl" mkfs -t 4 "$work/fs" >/dev/null
    target="stor:lustre://$work/fs/stor.bin" structs="stor:lustre://$work/fs/structs.bin" ;;
  cluster) target="stor:${uri}stor.bin" structs="stor:${uri}structs.bin" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
echo "== stor on $target ($np ranks)"
run -genv LD_PRELOAD "$lib" "$prog" "$target" stor "$work/stor.log" "$structs"
echo "== compare"
cmp "$work/romio.log" "$work/stor.log"
case "$mode" in
  nvme) cmp "$work/romio.bin" "$work/stor.bin" ;;
  lustre)
    "$stctl" cp "lustre://$work/fs/stor.bin" "$work/stor.copy.bin"
    cmp "$work/romio.bin" "$work/stor.copy.bin" ;;
  cluster)
    STOR_LUSTRE_KEY_FILE=$work/cluster/cluster.key "$stctl" cp "${uri}stor.bin" "$work/stor.copy.bin"
    cmp "$work/romio.bin" "$work/stor.copy.bin"
    "$stctl" cluster stop "$work/cluster"
    trap - EXIT ;;
esac
echo "byte-identical: OK"

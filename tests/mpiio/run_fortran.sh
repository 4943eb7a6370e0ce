#!/usr/bin/env bash
# Runs the Fortran MPI-IO programs (use mpi, mpif.h, use mpi_f08; also mpiio_f77_combiners) on NP ranks through plain ROMIO
# on a local file, then through libstor_mpiio (LD_PRELOAD) on a stor: file, and compares the
# files byte for byte (a program named *_linked is linked with libstor_mpiio and runs without
# LD_PRELOAD; it is then in the ROMIO run too, where it must pass plain files on). MODE cluster starts a stctl cluster (1 MDT, 4 OSTs) and runs with
# delegation off, so every rank mounts the file system itself.
#   run_fortran.sh MPIEXEC NP LIBSTOR_MPIIO STCTL nvme|lustre|cluster WORKDIR PROGRAM...
set -euo pipefail
mpiexec=$1 np=$2 lib=$3 stctl=$4 mode=$5 work=$6
shift 6
if [ "$mode" = cluster ]; then "$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true; fi
rm -rf "$work"
mkdir -p "$work"
extra=()
case "$mode" in
  nvme) prefix="stor:nvme://$work/" ;;
  lustre)
    "$stctl" mkfs -t 4 "$work/fs" >/dev/null
    prefix="stor:lustre://$work/fs/" ;;
  cluster)
    trap '"$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true' EXIT
    uri=$("$stctl" cluster start "$work/cluster" --osts 4 --no-root-squash | grep '^lustre://')
    prefix="stor:$uri"
    export STOR_LUSTRE_KEY_FILE=$work/cluster/cluster.key  # for stctl cp below
    extra=(-genv STOR_MPIIO_DELEGATION 0 -genv STOR_LUSTRE_KEY_FILE "$STOR_LUSTRE_KEY_FILE") ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
run() { "$mpiexec" -n "$np" -hosts 127.0.0.1 "$@"; }

for prog in "$@"; do
  name=$(basename "$prog")
  echo "== $name: ROMIO on $work/$name.romio ($np ranks)"
  run "$prog" "$work/$name.romio" "$work/missing.bin"
  echo "== $name: stor on $prefix$name.bin"
  preload=(-genv LD_PRELOAD "$lib")
  case "$name" in *_linked) preload=() ;; esac  # linked with libstor_mpiio: no preload
  run "${preload[@]}" "${extra[@]}" "$prog" "$prefix$name.bin" "${prefix}missing.bin"
  case "$mode" in
    nvme) cmp "$work/$name.romio" "$work/$name.bin" ;;
    lustre) "$stctl" cp "lustre://$work/fs/$name.bin" "$work/$name.copy"; cmp "$work/$name.romio" "$work/$name.copy" ;;
    cluster) "$stctl" cp "${prefix#stor:}$name.bin" "$work/$name.copy"; cmp "$work/$name.romio" "$work/$name.copy" ;;
  esac
  echo "$name: byte-identical"
done
if [ "$mode" = cluster ]; then "$stctl" cluster stop "$work/cluster"; trap - EXIT; fi
echo "OK: $# programs byte-identical with ROMIO"

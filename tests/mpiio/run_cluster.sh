#!/usr/bin/env bash
# MPI-IO on a multi-client lustre:// mount: starts a cluster (1 MDT, 4 OSTs) with stctl, runs
# mpiio_cluster and then mpiio_roundtrip on 4 ranks with delegation off (every rank must hold its
# own handle), checks the roundtrip file against ROMIO's, stops the cluster.
#   run_cluster.sh MPIEXEC CLUSTER_PROGRAM ROUNDTRIP_PROGRAM LIBSTOR_MPIIO STCTL WORKDIR
set -euo pipefail
mpiexec=$1 prog=$2 roundtrip=$3 lib=$4 stctl=$5 work=$6
"$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work"
trap '"$stctl" cluster stop "$work/cluster" >/dev/null 2>&1 || true' EXIT
out=$("$stctl" cluster start "$work/cluster" --osts 4 --no-root-squash)  # tests run as root in CI
echo "$out"
uri=$(printf '%s\n' "$out" | grep '^lustre://')
export STOR_LUSTRE_KEY_FILE=$work/cluster/cluster.key
run() { "$mpiexec" -n 4 -hosts 127.0.0.1 -genv STOR_MPIIO_DELEGATION 0 -genv STOR_LUSTRE_KEY_FILE "$STOR_LUSTRE_KEY_FILE" "$@"; }

echo "== mpiio_cluster on stor:${uri}"
"$stctl" ls "${uri}" >/dev/null
run -genv LD_PRELOAD "$lib" "$prog" "stor:${uri}"

echo "== roundtrip: ROMIO on $work/romio.bin, stor on stor:${uri}rt.bin"
run "$roundtrip" "$work/romio.bin" "$work/romio.dump" "$work/no-such-dir/x.bin"
run -genv LD_PRELOAD "$lib" "$roundtrip" "stor:${uri}rt.bin" "$work/stor.dump" "stor:nvme:not-a-uri"
cmp "$work/romio.dump" "$work/stor.dump"
"$stctl" cp "${uri}rt.bin" "$work/stor.copy.bin"
cmp "$work/romio.bin" "$work/stor.copy.bin"
# The striping hints (striping_factor=2, striping_unit=65536) became the file's layout, via the MDS.
"$stctl" getstripe "${uri}rt.bin" | tee "$work/getstripe.txt"
grep -Eq "stripe_count 2 " "$work/getstripe.txt"
grep -Eq "stripe_size 64K " "$work/getstripe.txt"
"$stctl" cluster status "$work/cluster"
"$stctl" cluster stop "$work/cluster"
trap - EXIT
echo "cluster MPI-IO: OK"

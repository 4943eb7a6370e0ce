#!/usr/bin/env bash
# mpiio_hints on 3 ranks with a ROMIO_HINTS file and program hints, through ROMIO (plain file)
# and through libstor_mpiio (stor:nvme://): MPI_File_get_info must report the same values.
#   run_hints.sh MPIEXEC PROGRAM LIBSTOR_MPIIO WORKDIR
set -euo pipefail
mpiexec=$1 prog=$2 lib=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
# ROMIO's format: '#' comments, "key value" lines; a line with three words is skipped; the
# program's own cb_buffer_size wins over the file's.
cat > "$work/hints" <<'HINTS'
# system hints
cb_buffer_size 1048576
romio_cb_write enable
bogus_hint 7
ind_rd_buffer_size 65536 extra-word
  ind_wr_buffer_size 131072
striping_unit
HINTS
run() { "$mpiexec" -n 3 -hosts 127.0.0.1 -genv ROMIO_HINTS "$work/hints" "$@"; }
# (cb_nodes is left out: ROMIO caps it at one aggregator per host (cb_config_list *:1), stor
# uses what is asked and reports that.)
hints=(cb_buffer_size 2097152 striping_unit 65536 foo bar)
run "$prog" "$work/plain.bin" "$work/romio.log" "${hints[@]}"
run -genv LD_PRELOAD "$lib" "$prog" "stor:nvme://$work/stor.bin" "$work/stor.log" "${hints[@]}"
diff "$work/romio.log" "$work/stor.log"
# romio_no_indep_rw=true turns collective buffering on for reads and writes, in both.
run "$prog" "$work/plain2.bin" "$work/romio2.log" romio_no_indep_rw true
run -genv LD_PRELOAD "$lib" "$prog" "stor:nvme://$work/stor2.bin" "$work/stor2.log" romio_no_indep_rw true
# (Without a striping_unit hint ROMIO reports none; stor reports the file-domain unit it uses.)
diff <(grep -v striping_unit "$work/romio2.log") <(grep -v striping_unit "$work/stor2.log")
grep -q "open: romio_cb_read = enable" "$work/stor2.log"
grep -q "open: cb_buffer_size = 2097152" "$work/stor.log"
grep -q "open: ind_wr_buffer_size = 131072" "$work/stor.log"
echo "same hints: OK"

#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, library instrumented) into build-fuzz and
# runs each for SECONDS (default 60) on a copy of its seed corpus in fuzz/corpus/<target>.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Crash inputs land in build-fuzz/crashes/<target>/; exits non-zero if any target crashed,
# leaked, hung (-timeout) or failed to start. The seed corpora in the repository are not grown.
# Reproduce a crash: build-fuzz/fuzz/fuzz_<target> build-fuzz/crashes/<target>/crash-<sha1>
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
all_targets=(s3_xml http uri transport lustre_mount layout tiering_journal parquet_footer mds_request)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
CC=${CC_FUZZ:-clang} CXX=${CXX_FUZZ:-clang++} cmake -S . -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DSTOR_FUZZ=ON -DSTOR_BUILD_TESTS=OFF -DSTOR_WITH_MPI=OFF "${launcher[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target $(printf 'fuzz_%s ' "${targets[@]}")

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
failed=()
printf '%-16s %12s %8s  %s\n' target execs exec/s result
for t in "${targets[@]}"; do
  corpus=$BUILD_DIR/corpus/$t crashes=$BUILD_DIR/crashes/$t log=$BUILD_DIR/logs/$t.log
  rm -rf "$corpus"
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  [[ -d fuzz/corpus/$t ]] && cp -r "fuzz/corpus/$t/." "$corpus/"
  dict=()
  [[ -f fuzz/$t.dict ]] && dict=(-dict="fuzz/$t.dict")
  # The transport target's in-process server finishes a connection on its own thread after the
  # input returns, so per-input leak checks flag that connection's live state as a leak. ASan
  # still checks every access there; the transport suites run with LeakSanitizer in sanitize.sh.
  [[ $t == transport ]] && dict+=(-detect_leaks=0)
  rc=0
  "$BUILD_DIR/fuzz/fuzz_$t" "$corpus" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [[ $rc -eq 0 ]]; then
    result=ok
  else
    result="FAILED (exit $rc), see $log"
    failed+=("$t")
  fi
  printf '%-16s %12s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$result"
done
if [[ ${#failed[@]} -gt 0 ]]; then
  for t in "${failed[@]}"; do
    echo "=== $t" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz property|.*runtime error|artifact_prefix|Test unit written)' \
      "$BUILD_DIR/logs/$t.log" | head -20 >&2 || tail -30 "$BUILD_DIR/logs/$t.log" >&2
  done
  echo "fuzz: crashes in: ${failed[*]} (inputs in $BUILD_DIR/crashes/)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${SECONDS_PER_TARGET}s without a crash"

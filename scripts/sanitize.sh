#!/usr/bin/env bash
# Builds stor and its tests with sanitizers (clang) and runs the test suites under them.
#   scripts/sanitize.sh asan [ctest args...]   ASan + UBSan, the whole suite, in build-asan
#   scripts/sanitize.sh tsan [ctest args...]   TSan, the concurrent suites, in build-tsan
# Any sanitizer report fails the test that produced it. See docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
kind=${1:-}
shift || true
case "$kind" in
  asan) sanitize=address ;;
  tsan) sanitize=thread ;;
  *) echo "usage: $0 asan|tsan [ctest args...]" >&2; exit 2 ;;
esac
BUILD_DIR=${BUILD_DIR:-build-$kind}
JOBS=${JOBS:-$(nproc)}

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# -O1 with line tables only: sanitized builds of everything are the slow part of CI, and line
# tables are all the reports need for file:line stacks.
CC=${CC_SANITIZE:-clang} CXX=${CXX_SANITIZE:-clang++} cmake -S . -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DSTOR_SANITIZE="$sanitize" "${launcher[@]}" >/dev/null

# Not run under sanitizers:
#  - install_consumer: installs the library and builds a consumer with the system compiler and
#    no sanitizer flags; linking that against an instrumented libstor.so fails for reasons that
#    have nothing to do with stor. The plain build runs it.
#  - bench_*: benchmarks; their numbers mean nothing instrumented (the plain build runs the smoke).
#  - s3express_upload_memory*: they assert a child's peak RSS, which ASan's shadow memory and
#    quarantine inflate by design; the same uploads run under ASan in s3express_streaming_test.
exclude='^(install_consumer|bench_.*|s3express_upload_memory.*)$'

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [[ $kind == asan ]]; then
  cmake --build "$BUILD_DIR" -j"$JOBS"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
  rc=0
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" -E "$exclude|^mpiio\\." "$@" || rc=$?
  # The MPI-IO suites run mpiexec (MPICH, not instrumented) with libstor_mpiio.so preloaded into
  # instrumented programs. MPICH itself leaks a few allocations from modules it has unloaded by
  # exit (no symbols left to suppress them by), so these run without LeakSanitizer; ASan and
  # UBSan stay on for stor's code in them.
  # symbolize=0: the symbolizer would inherit the LD_PRELOAD of libstor_mpiio.so and fail to
  # start; UBSan still prints file:line, ASan stacks are raw addresses (rerun outside mpiexec).
  ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0:symbolize=0" UBSAN_OPTIONS="$UBSAN_OPTIONS:symbolize=0" ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" \
    -R '^mpiio\.' -E "$exclude" "$@" || rc=$?
  exit $rc
else
  # The suites where threads meet: engine, transport (+ stor-target), lustre MDS and I/O, cache,
  # tiering.
  suites=(engine_test transport_test test_lustre_io test_lustre_meta test_lustre_remote cache_test tiering_test)
  cmake --build "$BUILD_DIR" -j"$JOBS" --target "${suites[@]}" stor-target stctl
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:suppressions=$here/scripts/sanitizer/tsan.supp}
  # Engine-dependent suites run on io_uring and on the thread pool (the io_uring engine annotates
  # the kernel's ordering for TSan; scripts/sanitizer/tsan.supp covers liburing's ring accesses).
  regex="^($(IFS='|'; echo "${suites[*]}"))(\\.(io_uring|threadpool))?\$"
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" -R "$regex" "$@"
fi

#!/usr/bin/env bash
# The extra CI stage, after the normal build and tests: the whole test suite under ASan + UBSan,
# then every fuzz target for 30 s on its seed corpus. Both always run; prints the time each part
# took and fails if either failed. See docs/testing.md.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
start=$SECONDS
scripts/sanitize.sh asan
asan_rc=$?
asan_done=$SECONDS
scripts/fuzz.sh "$FUZZ_SECONDS"
fuzz_rc=$?
end=$SECONDS
echo "ci-extra: asan build+tests $((asan_done - start))s (exit $asan_rc), fuzz build+runs $((end - asan_done))s" \
     "(exit $fuzz_rc), total $((end - start))s"
[[ $asan_rc -eq 0 && $fuzz_rc -eq 0 ]]

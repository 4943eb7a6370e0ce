#!/usr/bin/env bash
# The extra CI stage, after the normal build and tests: the whole test suite under ASan + UBSan,
# then every fuzz target for 30 s on its seed corpus. Prints the time each part took.
# See docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
start=$SECONDS
scripts/sanitize.sh asan
asan_done=$SECONDS
scripts/fuzz.sh "$FUZZ_SECONDS"
end=$SECONDS
echo "ci-extra: asan build+tests $((asan_done - start))s, fuzz build+runs $((end - asan_done))s, total $((end - start))s"

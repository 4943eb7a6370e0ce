#!/usr/bin/env bash
# Builds and runs every test (each engine-dependent suite runs on io_uring and on the thread pool).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 "$@"

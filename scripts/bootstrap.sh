#!/usr/bin/env bash
# One command for a fresh Debian machine: install dependencies, build, run the demo on the
# embedded default backend (nvme, in a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
./build/tools/demo/stor_demo

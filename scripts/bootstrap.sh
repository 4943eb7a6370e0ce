#!/usr/bin/env bash
# One command for a fresh Debian machine: install dependencies, build, install (cmake --install:
# /usr/local, and the Python package into the interpreter's site-packages), run the demo on the
# embedded default backend (nvme, in a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
scripts/install-deps.sh
scripts/build.sh
$SUDO cmake --install "${BUILD_DIR:-build}" >/dev/null
if compgen -G "${BUILD_DIR:-build}/python/stor/*.so" >/dev/null; then  # the binding was built (pybind11 found)
  # The interpreter the binding was built for (Debian's /usr/bin/python3, whose torch and numpy it uses).
  py=$(sed -n 's/^Python3_EXECUTABLE:[A-Z]*=//p' "${BUILD_DIR:-build}/CMakeCache.txt")
  (cd / && "${py:-python3}" -c 'import stor, stor.torch; print("bootstrap: import stor, stor.torch works")')
fi
./build/tools/demo/stor_demo

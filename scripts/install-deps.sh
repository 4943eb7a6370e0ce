#!/usr/bin/env bash
# Installs everything stor needs on Debian 12: compilers, the libraries (all Debian packages),
# fio for the local I/O bench, and the node programs (s3rver, AWS SDK) the S3 tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake pkg-config git
  liburing-dev libboost-dev libboost-program-options-dev
  libprotobuf-dev protobuf-compiler libtbb-dev catch2 libibverbs-dev libssl-dev
  fio openssl
)
if [ -f scripts/extra-packages.txt ]; then
  mapfile -t EXTRA < <(grep -v '^#' scripts/extra-packages.txt | grep -v '^$')
  PACKAGES+=("${EXTRA[@]}")
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Node programs used by the S3 tests and benches, at the exact versions of the committed
# tools/node/package-lock.json (npm ci): resolving afresh can meet registry metadata that names
# versions not published yet, and then fails.
if grep -q '"dependencies": {[^}]' tools/node/package.json 2>/dev/null || \
   node -e 'process.exit(Object.keys(require("./tools/node/package.json").dependencies||{}).length?0:1)'; then
  if [ ! -d tools/node/node_modules ] || [ tools/node/package-lock.json -nt tools/node/node_modules ]; then
    npm ci --prefix tools/node --no-audit --no-fund --loglevel=error
    touch tools/node/node_modules
  fi
fi
echo "install-deps: done"

# Sourced by the S3 benches: starts s3rver on a free 127.0.0.1 port and stops it on exit.
#   source bench/lib/s3rver.sh; start_s3rver DATA_DIR [PORT]   -> sets S3RVER_ENDPOINT, S3RVER_PID
# The caller's EXIT trap should call stop_s3rver.
s3rver_js="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tools/node/node_modules/s3rver/bin/s3rver.js"
S3RVER_PID=""

require_s3rver() {  # NAME: the bench's name for error messages
  command -v node >/dev/null || { echo "$1: node is not installed" >&2; exit 1; }
  [ -f "$s3rver_js" ] || { echo "$1: run npm install --prefix tools/node first" >&2; exit 1; }
}

start_s3rver() {
  local data=$1 port=${2:-}
  [ -n "$port" ] || port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  mkdir -p "$data"
  # s3rver's list tokens use DES, which OpenSSL 3 keeps in the legacy provider.
  node --openssl-legacy-provider "$s3rver_js" -d "$data" -a 127.0.0.1 -p "$port" --silent >/dev/null &
  S3RVER_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  S3RVER_ENDPOINT="http://127.0.0.1:$port"
}

stop_s3rver() {
  if [ -n "$S3RVER_PID" ]; then kill "$S3RVER_PID" 2>/dev/null || true; wait "$S3RVER_PID" 2>/dev/null || true; fi
  S3RVER_PID=""
}

# The frame of a bench script around one s3rver: checks node, s3rver and that the bench binary
# BUILD/RELPATH is built (its file name is the cmake target), sets `bench` to it and `work` to a
# new scratch directory, and on exit stops s3rver and removes `work`.
#   s3rver_bench_init NAME BUILD RELPATH WORK_PREFIX
s3rver_bench_init() {
  local name=$1 build_dir=$2 relpath=$3 prefix=$4
  bench="$build_dir/$relpath"
  require_s3rver "$name"
  [ -x "$bench" ] || { echo "$name: $bench not built (cmake --build $build_dir --target $(basename "$relpath"))" >&2; exit 1; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/$prefix-XXXXXX")
  trap s3rver_bench_cleanup EXIT
}

s3rver_bench_cleanup() {
  stop_s3rver
  rm -rf "$work"
}

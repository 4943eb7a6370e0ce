#!/usr/bin/env bash
# End-to-end check of the lustre stctl commands: mkfs, setstripe (plain and PFL), cp, getstripe,
# df, fsck, info, and their errors on bad input.
set -euo pipefail
STCTL="$1"
STOR_TARGET="${2:-}"  # optional: the stor-target binary, for mkfs --remote
WORK="$(mktemp -d "${TMPDIR:-/tmp}/stctl-lustre-XXXXXX")"
TARGET_PIDS=()
cleanup() {
  for pid in "${TARGET_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$STCTL" mkfs -t 4 "$WORK/fs" | grep -q "4 targets" || fail "mkfs"
"$STCTL" mkfs -t 4 "$WORK/fs" 2>/dev/null && fail "mkfs over an existing file system succeeded"
"$STCTL" init -t 2 -c -1 -S 128K "$WORK/fs2" >/dev/null || fail "init"
"$STCTL" getstripe "$WORK/fs2" | grep -q "stripe_count -1 stripe_size 128K" || fail "init default layout"

"$STCTL" setstripe -c 4 -S 1M "$WORK/fs/wide" || fail "setstripe"
"$STCTL" setstripe -E 64M -c 1 -E -1 -c -1 "lustre://$WORK/fs/pfl" || fail "setstripe PFL"
head -c 3000000 /dev/urandom > "$WORK/src.bin"
"$STCTL" cp "$WORK/src.bin" "lustre://$WORK/fs/wide" >/dev/null 2>&1 || fail "cp in"
"$STCTL" cp "lustre://$WORK/fs/wide" "$WORK/back.bin" >/dev/null 2>&1 || fail "cp out"
cmp -s "$WORK/src.bin" "$WORK/back.bin" || fail "data differs after a round trip"

out="$("$STCTL" getstripe "$WORK/fs/wide")"
echo "$out" | grep -q "stripe_count 4 stripe_size 1M" || fail "getstripe layout: $out"
[ "$(echo "$out" | grep -c '1048576')" -ge 2 ] || fail "getstripe object sizes: $out"
"$STCTL" getstripe "$WORK/fs/pfl" | grep -q "component 1: extent \[64M, EOF) stripe_count 4" || fail "getstripe PFL"
"$STCTL" --json getstripe "$WORK/fs/wide" | grep -q '"allocated":true' || fail "getstripe --json"

"$STCTL" df "$WORK/fs" | grep -q "stor-OST3" || fail "df"
"$STCTL" --json df "$WORK/fs" | grep -q '"objects":1' || fail "df --json"
"$STCTL" fsck "$WORK/fs" | grep -q "0 orphan" || fail "fsck"
"$STCTL" info "lustre://$WORK/fs/wide" | grep -q "lustre.layout_driver *emulated" || fail "info driver"

err="$("$STCTL" setstripe -S 100000 "$WORK/fs/x" 2>&1)" && fail "bad stripe size accepted"
echo "$err" | grep -q "multiple of 64 KiB" || fail "bad stripe size message: $err"
err="$("$STCTL" setstripe -c 5 "$WORK/fs/x" 2>&1)" && fail "count > targets accepted"
echo "$err" | grep -q "exceeds the 4 targets" || fail "count message: $err"
err="$("$STCTL" info "lustre://$WORK/fs/../etc" 2>&1)" && fail "path escape accepted"
echo "$err" | grep -q "InvalidArgument" || fail "escape message: $err"
if [ -n "$STOR_TARGET" ]; then
  # Two stor-target daemons as the object targets: mkfs --remote, a striped round trip over TCP,
  # every connection authenticated with the key the targets were started with.
  "$STOR_TARGET" --make-key "$WORK/fs.key" >/dev/null || fail "stor-target --make-key"
  [ "$(stat -c %a "$WORK/fs.key")" = 600 ] || fail "key file mode $(stat -c %a "$WORK/fs.key")"
  endpoints=()
  for t in 0 1; do
    mkdir -p "$WORK/target$t"
    "$STOR_TARGET" --listen tcp://127.0.0.1:0 --dir "$WORK/target$t" --key-file "$WORK/fs.key" > "$WORK/endpoint$t" 2>/dev/null &
    TARGET_PIDS+=($!)
    for _ in $(seq 1 100); do [ -s "$WORK/endpoint$t" ] && break; sleep 0.05; done
    endpoints+=(--remote "$(head -1 "$WORK/endpoint$t")")
  done
  out="$("$STCTL" mkfs "${endpoints[@]}" --key-file "$WORK/fs.key" -c -1 -S 64K "$WORK/rfs")" || fail "mkfs --remote"
  echo "$out" | grep -q "2 targets" || fail "mkfs --remote: $out"
  echo "$out" | grep -q "target key: $WORK/rfs/mdt/target.key" || fail "mkfs does not say where the key is: $out"
  cmp -s "$WORK/fs.key" "$WORK/rfs/mdt/target.key" || fail "mkfs did not keep the targets' key"
  [ "$(stat -c %a "$WORK/rfs/mdt/target.key")" = 600 ] || fail "kept key is not 0600"
  # Without --key-file mkfs makes a new key (the running targets refuse it until restarted with it).
  out="$("$STCTL" mkfs "${endpoints[@]}" "$WORK/rfs-new")" || fail "mkfs --remote with a new key: $out"
  echo "$out" | grep -q "restart each stor-target with --key-file $WORK/rfs-new/mdt/target.key" || fail "new key message: $out"
  err="$("$STCTL" cp "$WORK/src.bin" "lustre://$WORK/rfs-new/f" 2>&1)" && fail "targets accepted a key they do not hold"
  echo "$err" | grep -q "authentication failed" || fail "wrong key message: $err"
  "$STCTL" cp "$WORK/src.bin" "lustre://$WORK/rfs/f" >/dev/null 2>&1 || fail "cp to remote targets"
  "$STCTL" cp "lustre://$WORK/rfs/f" "$WORK/rback.bin" >/dev/null 2>&1 || fail "cp from remote targets"
  cmp -s "$WORK/src.bin" "$WORK/rback.bin" || fail "data differs through remote targets"
  "$STCTL" getstripe "$WORK/rfs/f" | grep -q "stripe_count 2 stripe_size 64K" || fail "getstripe remote"
  [ -n "$(ls -A "$WORK/target1")" ] || fail "second target holds no object"
  err="$("$STCTL" mkfs --remote tcp://127.0.0.1:1 "$WORK/rfs2" 2>&1)" && fail "mkfs with a dead target succeeded"
  echo "$err" | grep -q "tcp://127.0.0.1:1" || fail "dead target message: $err"
fi
echo "stctl lustre commands: ok"

#!/usr/bin/env python3
"""Layering check: which layer of the tree may include which (issue 10).

Each top-level folder is one layer (backends/<name> each its own). A file may include its own
layer's headers, the public headers (include/stor) and the internal headers of the layers listed
for it in ALLOWED below; nothing else. Public headers include only public headers, never an
internal or generated (.pb.h) one. Headers are found by "quoted" includes with a folder
(`#include "net/transport.h"`), by <stor/...> includes, and by bare "name.h" includes, which
must then be a file next to the includer or at the top of a layer it may use.

    check_layering.py [--root DIR]   exit 0 when clean, 1 listing every violation

Run by the build (target layering_check) and by ctest (layering_check, layering_check_rejects).
"""
import argparse
import os
import re
import sys

PUBLIC = "include/stor"

# layer -> layers whose internal headers it may include (besides its own and include/stor).
ALLOWED = {
    PUBLIC: set(),
    "core": set(),
    "net": {"core"},
    "backends/nvme": {"core"},
    "backends/lustre": {"core", "net"},
    "backends/s3express": {"core"},
    "backends/tier": {"core"},
    "cache": {"core"},
    "tools": set(),
    "mpiio": set(),
    "python": set(),
    "plugins": set(),
    "support": set(),
    "bench": {"support"},
    # Tests and fuzzers exercise internals of every layer.
    "tests": None,
    "fuzz": None,
}

# (includer, included) pairs allowed although the rules above refuse them, each with its reason.
# An entry that no longer matches anything is itself reported, so the list cannot go stale.
EXCEPTIONS = {
    # Measures the S3Client class itself, below the Backend seam (bench/s3/CMakeLists.txt).
    ("bench/s3/s3_bench.cc", "backends/s3express/s3_client.h"),
    # Times connect + one raw object call with and without the key handshake, below TargetClient.
    ("bench/transport/bench_transport.cc", "backends/lustre/lustre_admin.h"),
    ("bench/transport/bench_transport.cc", "net/auth.h"),
    ("bench/transport/bench_transport.cc", "net/remote_object.h"),
}

SOURCE_EXT = (".h", ".hh", ".hpp", ".c", ".cc", ".cpp", ".inc")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
SKIP_DIRS = {"build", "node_modules", ".git"}


def layer_of(rel):
    """The layer a repository-relative path belongs to, or None outside every layer."""
    parts = rel.split("/")
    if rel.startswith(PUBLIC + "/"):
        return PUBLIC
    if parts[0] == "backends" and len(parts) > 2:
        return "backends/" + parts[1]
    if parts[0] in ALLOWED and len(parts) > 1:
        return parts[0]
    return None


def sources(root):
    for top in sorted(ALLOWED):
        base = os.path.join(root, top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build"))
            for name in sorted(filenames):
                if name.endswith(SOURCE_EXT):
                    yield os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")


def target_of(root, includer, kind, path):
    """Repository-relative path of what an include names, or None for a system header."""
    if kind == "<":
        return PUBLIC + "/" + path[len("stor/"):] if path.startswith("stor/") else None
    if path.startswith("stor/"):
        return PUBLIC + "/" + path[len("stor/"):]
    if "/" not in path:
        # Next to the includer, else at the top of a layer it may use (support/ is on the
        # benches' include path); a missing file is reported against the includer's folder.
        candidates = [os.path.dirname(includer) + "/" + path]
        candidates += [layer + "/" + path for layer in sorted(ALLOWED.get(layer_of(includer)) or ())]
        return next((c for c in candidates if os.path.exists(os.path.join(root, c))), candidates[0])
    if layer_of(path) is not None or path.endswith(".pb.h"):
        return path
    if os.path.exists(os.path.join(root, os.path.dirname(includer), path)):
        return os.path.normpath(os.path.dirname(includer) + "/" + path)
    return None


def check(root):
    problems, used = [], set()
    for rel in sources(root):
        layer = layer_of(rel)
        allowed = ALLOWED.get(layer)
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in INCLUDE_RE.finditer(text):
            kind, path = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            target = target_of(root, rel, kind, path)
            if target is None:
                continue
            where = f"{rel}:{line}: #include {kind}{path}{'>' if kind == '<' else chr(34)}"
            if layer == PUBLIC:
                if target.endswith(".pb.h") or layer_of(target) != PUBLIC:
                    problems.append(f"{where}: a public header may include only include/stor headers")
                elif not os.path.exists(os.path.join(root, target)):
                    problems.append(f"{where}: no such public header")
                continue
            if allowed is None:
                continue
            if "/" not in path and not os.path.exists(os.path.join(root, target)):
                problems.append(f"{where}: a bare include must name a file next to the includer (or atop a layer it may use)")
                continue
            tlayer = layer_of(target)
            if tlayer in (layer, PUBLIC) or tlayer in allowed:
                continue
            if (rel, target) in EXCEPTIONS:
                used.add((rel, target))
                continue
            ok = sorted(allowed | {layer, PUBLIC})
            problems.append(f"{where}: layer '{layer}' may include only {', '.join(ok)} (this is '{tlayer or target}')")
    for rel, target in sorted(EXCEPTIONS - used):
        if os.path.exists(os.path.join(root, rel)):
            problems.append(f"check_layering.py: exception ({rel} -> {target}) no longer needed; remove it")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = ap.parse_args()
    problems = check(args.root)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"layering check: {len(problems)} violation(s) in {args.root}", file=sys.stderr)
        return 1
    print(f"layering check: clean ({args.root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The layering check must refuse what it is there to refuse: small trees, each with one bad
include (or none), checked by the real script. Exit 0 when every case gives the expected result."""
import os
import subprocess
import sys
import tempfile

CHECK = sys.argv[1]


def run(files):
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        p = subprocess.run([sys.executable, CHECK, "--root", root], capture_output=True, text=True)
        return p.returncode, p.stderr


BASE = {
    "include/stor/store.h": '#pragma once\n#include <string>\n#include "stor/status.h"\n',
    "include/stor/status.h": "#pragma once\n",
    "core/store.cc": '#include "stor/store.h"\n#include "core/registry.h"\n',
    "core/registry.h": "#pragma once\n",
    "net/transport.h": '#pragma once\n#include "core/registry.h"\n#include <net/if.h>\n',
    "backends/lustre/mds.h": '#pragma once\n#include "backends/lustre/lustre.pb.h"\n#include "net/transport.h"\n',
    "tools/stctl/main.cc": '#include "command.h"\n#include <stor/store.h>\n',
    "tools/stctl/command.h": '#pragma once\n#include "stor/store.h"\n',
    "tests/core/store_test.cc": '#include "backends/lustre/mds.h"\n',
}

CASES = [
    # (name, files changed from BASE, expect failure, text the report must contain)
    ("clean tree", {}, False, ""),
    ("core includes a backend", {"core/store.cc": '#include "backends/lustre/mds.h"\n'}, True, "layer 'core'"),
    ("net includes a backend", {"net/wire.cc": '#include "backends/lustre/mds.h"\n'}, True, "layer 'net'"),
    ("tool includes an internal header", {"tools/stctl/cmd_x.cc": '#include "net/transport.h"\n'}, True, "layer 'tools'"),
    ("python binding includes an internal header",
     {"python/src/stor_module.cc": '#include "backends/s3express/s3_client.h"\n'}, True, "layer 'python'"),
    ("public header includes an internal one", {"include/stor/admin.h": '#include "core/registry.h"\n'}, True,
     "public header"),
    ("public header includes a generated one", {"include/stor/admin.h": '#include "backends/lustre/lustre.pb.h"\n'},
     True, "public header"),
    ("bare include of a file that is not local",
     {"tools/stctl/cmd_y.cc": '#include "registry.h"\n'}, True, "next to the includer"),
    ("bench uses a support header", {"bench/x/b.cc": '#include "test_util.h"\n', "support/test_util.h": ""},
     False, ""),
    ("tool uses a support header", {"tools/stctl/cmd_z.cc": '#include "test_util.h"\n',
                                    "support/test_util.h": ""}, True, "next to the includer"),
    ("stale exception", {"bench/s3/s3_bench.cc": '#include "stor/store.h"\n'}, True, "no longer needed"),
]

failed = 0
for name, change, expect_fail, needle in CASES:
    files = dict(BASE)
    files.update(change)
    rc, err = run(files)
    ok = (rc != 0) == expect_fail and needle in err
    print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {rc}" + (f"\n{err}" if not ok or expect_fail else ""))
    failed += not ok
sys.exit(1 if failed else 0)

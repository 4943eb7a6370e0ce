#!/usr/bin/env python3
"""libstor.so exports the public API and nothing else: every dynamic symbol is a stor:: name (or
its typeinfo/vtable/thunk) or a stor_ C function, the admin/target/C entry points are there, and
no internal namespace (stor::lustre, stor::transport, stor::s3, stor::tiering::internal ...) is.

    exports_test.py LIBSTOR_SO
"""
import re
import subprocess
import sys

lib = sys.argv[1]
nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
names = subprocess.run(["c++filt"], input="\n".join(l.split(" ", 2)[2] for l in nm.splitlines() if l.count(" ") >= 2),
                       capture_output=True, text=True, check=True).stdout.splitlines()

ALLOWED = re.compile(r"^(stor_\w+|stor::.*|(typeinfo|typeinfo name|vtable|virtual thunk|non-virtual thunk) (for|to) stor::.*)$")
INTERNAL = re.compile(r"^((typeinfo|typeinfo name|vtable) for )?stor::(lustre|transport|s3|nvme|internal|tiering::internal|cache::internal)::")
REQUIRED = ["stor_store_open", "stor::Store::create(", "stor::admin::mkfs(", "stor::admin::getstripe(",
            "stor::admin::s3_create_bucket(", "stor::TargetServer::start(", "stor::TargetClient::connect(", "stor::make_target_key(",
            "stor::Status::to_string", "typeinfo for stor::TargetServer", "vtable for stor::TargetServer"]

problems = [f"exported but not public API: {n}" for n in names if not ALLOWED.match(n)]
# Named by a public macro (STOR_REGISTER_BACKEND in stor/register_backend.h), so exported on purpose.
MACRO_SUPPORT = ("stor::internal::register_builtin_backend(", "stor::internal::registered_or_abort(")
problems += [f"internal symbol exported: {n}" for n in names
             if INTERNAL.search(n) and not n.startswith("stor_") and not n.startswith(MACRO_SUPPORT)]
problems += [f"missing export: {r}" for r in REQUIRED if not any(n.startswith(r) for n in names)]
for p in problems[:40]:
    print(p)
print(f"{len(names)} exported symbols, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)

#!/usr/bin/python3
"""stor vs the AWS Common Runtime S3 client against one server, same run (driven by crt.sh).

Every measurement is a child process, stor's and the CRT's alternating, REPEAT times each; the
table shows medians. Large transfers are timed around the child (wall clock, and user + system
CPU from its rusage) minus each client's start-up measured the same way in the same run
(`stctl stat` of the object; `crt_bench.py --op noop`, which imports awscrt and builds its
client), so a 90 ms Python start-up does not count against the CRT. Small-object rates and
latencies are timed inside each client. Ratios are stor / CRT: above 1 is better for stor on
throughput, below 1 on CPU and latency.

  crt_compare.py --server NAME --endpoint http://127.0.0.1:80 --build BUILD [--size BYTES] ...
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(cmd):
    """Runs cmd; returns (stdout, wall seconds, cpu seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit("crt_compare: %s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.decode()[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.stdout.decode(), wall, cpu


def field(out, name):
    m = re.search(r"\b%s=([0-9.]+)" % name, out)
    if not m:
        sys.exit("crt_compare: no %s in %r" % (name, out))
    return float(m.group(1))


def med(xs):
    return statistics.median(xs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", default="crtbench")
    p.add_argument("--build", required=True)
    p.add_argument("--size", type=int, default=1 << 30)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--small-count", type=int, default=500)
    p.add_argument("--small-size", type=int, default=64 << 10)
    p.add_argument("--inflight", type=int, default=16)
    p.add_argument("--latency-count", type=int, default=200)
    p.add_argument("--stor-set", action="append", default=[], help="extra stor settings KEY=VALUE")
    p.add_argument("--api", default="batch", choices=["batch", "files"],
                   help="stor's small GETs: Store::read_many, or a thread per in-flight open+read+close")
    p.add_argument("--workloads", default="get,put,small,latency")
    p.add_argument("--gc-cmd", default="", help="run after deleting objects (RGW keeps their data until its GC runs)")
    a = p.parse_args()

    host = re.sub(r"^https?://", "", a.endpoint).split(":")[0].split("/")[0]
    stctl = [os.path.join(a.build, "tools", "stctl", "stctl"), "--set", "s3.endpoint=" + a.endpoint]
    for kv in a.stor_set:
        stctl += ["--set", kv]
    bench = [os.path.join(a.build, "bench", "s3", "s3_bench"), "--endpoint", a.endpoint, "--bucket", a.bucket]
    for kv in a.stor_set:
        bench += ["--set", kv]
    crt = [sys.executable, os.path.join(HERE, "crt_bench.py"), "--host", host, "--bucket", a.bucket]
    shm = "/dev/shm/stor-crt-%d" % os.getpid()
    src, dst = shm + "-src", shm + "-dst"
    uri = "s3://%s/" % a.bucket
    workloads = a.workloads.split(",")
    rows = []  # (workload, stor value, crt value, unit, higher_is_better)

    try:
        r = subprocess.run(stctl + ["mb", uri], capture_output=True)
        if r.returncode != 0 and b"exist" not in (r.stderr + r.stdout).lower():
            sys.exit("crt_compare: mb: " + r.stderr.decode())
        mib, gib = a.size / 2**20, a.size / 2**30

        if "get" in workloads or "put" in workloads:
            with open(src, "wb") as f:
                block = os.urandom(1 << 20)
                for i in range(a.size >> 20):
                    f.write(block[i % 997:] + block[:i % 997])
            timed(stctl + ["cp", src, uri + "big"])
            s0 = [timed(stctl + ["stat", uri + "big"])[1:] for _ in range(3)]
            c0 = [timed(crt + ["--op", "noop"])[1:] for _ in range(3)]
            s_wall0, s_cpu0 = med([x[0] for x in s0]), med([x[1] for x in s0])
            c_wall0, c_cpu0 = med([x[0] for x in c0]), med([x[1] for x in c0])

            def transfer(name, stor_cmd, crt_cmd, after):
                sw, sc, cw, cc = [], [], [], []
                for _ in range(a.repeat):
                    _, w, c = timed(stor_cmd)
                    sw.append(w - s_wall0)
                    sc.append(c - s_cpu0)
                    after()
                    _, w, c = timed(crt_cmd)
                    cw.append(w - c_wall0)
                    cc.append(c - c_cpu0)
                    after()
                rows.append((name + ", MiB/s", mib / med(sw), mib / med(cw), True))
                rows.append((name + ", CPU-s/GiB", med(sc) / gib, med(cc) / gib, False))

            def rm_dst():
                if os.path.exists(dst):
                    os.unlink(dst)

            def gc():
                if a.gc_cmd:
                    subprocess.run(a.gc_cmd, shell=True, capture_output=True)

            def rm_puts():
                for k in ("put-stor", "put-crt"):
                    subprocess.run(bench + ["--op", "delete", "--key", k], capture_output=True)
                gc()

            if "get" in workloads:
                transfer("%d MiB GET to a file" % mib, stctl + ["cp", uri + "big", dst],
                         crt + ["--op", "get-file", "--key", "big", "--file", dst], rm_dst)
            subprocess.run(bench + ["--op", "delete", "--key", "big"], capture_output=True)
            gc()
            if "put" in workloads:
                transfer("%d MiB PUT from a file" % mib, stctl + ["cp", src, uri + "put-stor"],
                         crt + ["--op", "put-file", "--key", "put-crt", "--file", src], rm_puts)
            os.unlink(src)

        if "small" in workloads:
            timed(bench + ["--op", "small-put", "--count", str(a.small_count), "--size", str(a.small_size)])
            s, c = [], []
            for _ in range(a.repeat):
                out, _, _ = timed(bench + ["--op", "small-get", "--count", str(a.small_count), "--size",
                                           str(a.small_size), "--inflight", str(a.inflight), "--api", a.api])
                s.append(field(out, "objps"))
                out, _, _ = timed(crt + ["--op", "small-get", "--count", str(a.small_count), "--inflight",
                                         str(a.inflight)])
                c.append(field(out, "objps"))
            rows.append(("%d x %d KiB GETs, %d in flight, objects/s" % (a.small_count, a.small_size >> 10,
                                                                        a.inflight), med(s), med(c), True))

        if "latency" in workloads:
            timed(bench + ["--op", "small-put", "--prefix", "lat", "--count", "1", "--size", "4096"])
            sp50, sp99, cp50, cp99 = [], [], [], []
            for _ in range(a.repeat):
                out, _, _ = timed(bench + ["--op", "latency", "--key", "lat0", "--count", str(a.latency_count),
                                           "--size", "4096"])
                sp50.append(field(out, "p50_ms"))
                sp99.append(field(out, "p99_ms"))
                out, _, _ = timed(crt + ["--op", "latency", "--key", "lat0", "--count", str(a.latency_count)])
                cp50.append(field(out, "p50_ms"))
                cp99.append(field(out, "p99_ms"))
            rows.append(("4 KiB GET latency p50, ms", med(sp50), med(cp50), False))
            rows.append(("4 KiB GET latency p99, ms", med(sp99), med(cp99), False))
    finally:
        for f in (src, dst):
            if os.path.exists(f):
                os.unlink(f)

    print("\nstor vs aws-c-s3 (python3-awscrt) on %s at %s, medians of %d%s" %
          (a.server, a.endpoint, a.repeat, (", stor " + " ".join(a.stor_set)) if a.stor_set else ""))
    print("%-44s %10s %10s %12s" % ("workload", "stor", "aws-c-s3", "stor/aws-c-s3"))
    for name, s, c, _ in rows:
        print("%-44s %10.2f %10.2f %11.2fx" % (name, s, c, s / c if c else 0))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The reference for bench/s3/crt.sh: the AWS Common Runtime S3 client (aws-c-s3, through Debian's
python3-awscrt, awscrt.s3.S3Client), the client Mountpoint for S3 and the S3 connector for PyTorch
are built on. Prints one line per run in s3_bench's format ("crt OP key=value ...").

Debian's awscrt 0.16 connects to port 80 of the Host header's address whatever else is said, so
the server must listen on HOST:80 (crt.sh arranges that).

  crt_bench.py --host 127.0.0.1 --bucket B --op put-file --key K --file F
  crt_bench.py --host 127.0.0.1 --bucket B --op get-file --key K --file F
  crt_bench.py --host 127.0.0.1 --bucket B --op small-get --prefix P --count N --inflight C
  crt_bench.py --host 127.0.0.1 --bucket B --op latency --key K --count N

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; region AWS_REGION (us-east-1).
"""
import argparse
import os
import resource
import sys
import threading
import time

from awscrt import auth, http, io, s3


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Client:
    def __init__(self, args):
        self.host = args.host
        self.bucket = args.bucket
        elg = io.EventLoopGroup(0)  # one event loop per core, as the CRT's default
        resolver = io.DefaultHostResolver(elg)
        bootstrap = io.ClientBootstrap(elg, resolver)
        creds = auth.AwsCredentialsProvider.new_static(os.environ["AWS_ACCESS_KEY_ID"],
                                                       os.environ["AWS_SECRET_ACCESS_KEY"])
        kwargs = {}
        if args.part_size:
            kwargs["part_size"] = args.part_size
        if args.target_gbps:
            kwargs["throughput_target_gbps"] = args.target_gbps
        self.client = s3.S3Client(bootstrap=bootstrap, region=os.environ.get("AWS_REGION", "us-east-1"),
                                  tls_mode=s3.S3RequestTlsMode.DISABLED, credential_provider=creds, **kwargs)

    def request(self, method, key, type_, headers=(), **kw):
        hdrs = http.HttpHeaders([("Host", self.host)] + list(headers))
        req = http.HttpRequest(method, "/" + self.bucket + "/" + key, hdrs)
        done = threading.Event()
        result = {}

        def on_done(error=None, error_headers=None, error_body=None, **_):
            result["error"] = error
            result["body"] = error_body
            done.set()

        kw.setdefault("on_done", on_done)
        r = self.client.make_request(request=req, type=type_, **kw)
        return r, done, result


def check(result, what):
    if result.get("error") is not None:
        sys.exit("crt_bench: %s: %r %r" % (what, result["error"], result.get("body")))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--op", required=True, choices=["noop", "put-file", "get-file", "small-get", "latency"])
    p.add_argument("--key")
    p.add_argument("--file")
    p.add_argument("--prefix", default="small/")
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--inflight", type=int, default=16)
    p.add_argument("--part-size", type=int, default=0)
    p.add_argument("--target-gbps", type=float, default=0)
    args = p.parse_args()
    c = Client(args)

    cpu0, t0 = cpu_seconds(), time.monotonic()
    if args.op == "noop":  # start-up alone, subtracted by crt_compare.py
        print("crt noop")
    elif args.op == "put-file":
        size = os.path.getsize(args.file)
        _, done, res = c.request("PUT", args.key, s3.S3RequestType.PUT_OBJECT,
                                 [("Content-Length", str(size)), ("Content-Type", "application/octet-stream")],
                                 send_filepath=args.file)
        done.wait()
        check(res, "PUT " + args.key)
        secs, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        print("crt put-file bytes=%d seconds=%.3f MiBps=%.1f cpu=%.3f" % (size, secs, size / 2**20 / secs, cpu))
    elif args.op == "get-file":
        _, done, res = c.request("GET", args.key, s3.S3RequestType.GET_OBJECT, recv_filepath=args.file)
        done.wait()
        check(res, "GET " + args.key)
        secs, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        size = os.path.getsize(args.file)
        print("crt get-file bytes=%d seconds=%.3f MiBps=%.1f cpu=%.3f" % (size, secs, size / 2**20 / secs, cpu))
    elif args.op == "small-get":
        # Keys PREFIX0..PREFIX{count-1}, `inflight` requests outstanding, bodies kept in memory.
        sem = threading.Semaphore(args.inflight)
        lock = threading.Lock()
        state = {"bytes": 0, "left": args.count, "error": None}
        all_done = threading.Event()
        keep = []

        def make(i):
            def on_body(chunk, **_):
                with lock:
                    state["bytes"] += len(chunk)

            def on_done(error=None, error_body=None, **_):
                with lock:
                    if error is not None and state["error"] is None:
                        state["error"] = (i, error, error_body)
                    state["left"] -= 1
                    if state["left"] == 0:
                        all_done.set()
                sem.release()
            return on_body, on_done

        for i in range(args.count):
            sem.acquire()
            on_body, on_done = make(i)
            keep.append(c.request("GET", args.prefix + str(i), s3.S3RequestType.GET_OBJECT, on_body=on_body,
                                  on_done=on_done)[0])
        all_done.wait()
        if state["error"]:
            sys.exit("crt_bench: small-get: %r" % (state["error"],))
        secs, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        print("crt small-get count=%d bytes=%d seconds=%.3f objps=%.1f cpu=%.3f" %
              (args.count, state["bytes"], secs, args.count / secs, cpu))
    else:  # latency: one GET at a time, whole object
        lat = []
        for _ in range(args.count):
            s = time.monotonic()
            _, done, res = c.request("GET", args.key, s3.S3RequestType.GET_OBJECT, on_body=lambda chunk, **_: None)
            done.wait()
            check(res, "GET " + args.key)
            lat.append((time.monotonic() - s) * 1000)
        lat.sort()
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)]
        print("crt latency count=%d p50_ms=%.2f p99_ms=%.2f" % (args.count, p50, p99))


if __name__ == "__main__":
    main()

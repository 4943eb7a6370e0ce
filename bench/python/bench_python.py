#!/usr/bin/env python3
"""The Python binding against the plain-Python way of doing the same thing, in the same run
(bench/python/run.sh starts s3rver and calls this; see docs/python.md for the table).

  readinto   nvme:// stor.File.readinto (and readinto_async, 4 in flight) vs
             open(path, 'rb', buffering=0).readinto, same file
  epoch      DataLoader epoch: stor.torch.IterableDataset over s3:// vs a plain local-file dataset;
             and through a tier:// link, epoch 1 (fetches from the bucket) vs epoch 2 (local)
  checkpoint stor.torch.save/load to s3:// vs torch.save/load on a local file + the AWS CLI
             upload/download; DCP load of 10% of the tensors vs all of them

Sizes from the environment: FILES (2000), SAMPLE_KB (256), CKPT_MB (1024), READ_MB (512),
ROUNDS (3, alternating the two sides of each comparison, medians reported).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import stor
import stor.torch

FILES = int(os.environ.get("FILES", 2000))
SAMPLE = int(os.environ.get("SAMPLE_KB", 256)) << 10
CKPT = int(os.environ.get("CKPT_MB", 1024)) << 20
READ = int(os.environ.get("READ_MB", 512)) << 20
ROUNDS = int(os.environ.get("ROUNDS", 3))

rows = []


def report(what, stor_value, ref_value, unit, ref_name, higher_is_better=True):
    ratio = stor_value / ref_value if higher_is_better else ref_value / stor_value
    rows.append((what, stor_value, ref_value, unit, ref_name, ratio))
    print(f"{what:<44} stor {stor_value:10.2f} {unit:<10} {ref_name:<28} {ref_value:10.2f}   ratio {ratio:5.2f}x",
          flush=True)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def timed_wall_cpu(fn):
    """(wall seconds, CPU seconds of this process) of fn()."""
    c = time.process_time()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, time.process_time() - c


# ---- readinto -------------------------------------------------------------------------------

def bench_readinto(work):
    path = os.path.join(work, "readinto.bin")
    with open(path, "wb") as f:
        for _ in range(READ >> 24):
            f.write(os.urandom(16 << 20))
    size = os.path.getsize(path)

    def stor_pass(buf):
        with stor.open("nvme://" + path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass

    def py_pass(buf):
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass

    def stor_async_pass(bufs):
        # readinto_async with len(bufs) reads in flight, each buffer reused once its read is done.
        with stor.open("nvme://" + path, "rb", buffering=0) as f:
            pending = []
            for i, off in enumerate(range(0, size, len(bufs[0]))):
                if len(pending) == len(bufs):
                    pending.pop(0).result()
                pending.append(f.readinto_async(bufs[i % len(bufs)], off))
            for fut in pending:
                fut.result()

    bufs = [bytearray(1 << 20) for _ in range(4)]
    py_pass(bufs[0])
    s, p = [], []
    for _ in range(ROUNDS + 2):
        s.append(size / timed(lambda: stor_async_pass(bufs)) / 1e9)
        p.append(size / timed(lambda: py_pass(bufs[0])) / 1e9)
    report("readinto_async nvme://, 4 x 1 MiB in flight", statistics.median(s), statistics.median(p), "GB/s",
           "open().readinto 1 MiB")

    for bs in (1 << 20, 16 << 20):
        buf = bytearray(bs)
        py_pass(buf)  # page cache warm for both
        s, p, s_cpu, p_cpu = [], [], [], []
        for _ in range(ROUNDS + 2):
            wall, cpu = timed_wall_cpu(lambda: stor_pass(buf))
            s.append(size / wall / 1e9)
            s_cpu.append(size / cpu / 1e9)
            wall, cpu = timed_wall_cpu(lambda: py_pass(buf))
            p.append(size / wall / 1e9)
            p_cpu.append(size / cpu / 1e9)
        report(f"readinto nvme:// {bs >> 20} MiB buffers", statistics.median(s), statistics.median(p), "GB/s",
               "open().readinto")
        # Bytes per CPU second of the whole process (all threads): what the binding costs, without
        # the preemption a shared machine adds to wall time.
        report(f"  same, per CPU second", statistics.median(s_cpu), statistics.median(p_cpu), "GB/cpu-s",
               "open().readinto")
    os.remove(path)


# ---- DataLoader epoch -----------------------------------------------------------------------

class LocalFiles(IterableDataset):
    """The reference: files read with open().read(), split over workers like stor's dataset."""

    def __init__(self, paths):
        self.paths = paths

    def __iter__(self):
        info = get_worker_info()
        wid, n = (info.id, info.num_workers) if info else (0, 1)
        for p in self.paths[wid::n]:
            with open(p, "rb") as f:
                yield f.read()


def _epoch(ds, workers):
    loader = DataLoader(ds, batch_size=None, num_workers=workers, prefetch_factor=8 if workers else 2)
    count = 0
    t = time.perf_counter()
    for sample in loader:
        count += 1
    dt = time.perf_counter() - t
    assert count == FILES, (count, FILES)
    return FILES / dt


def bench_epoch(work, bucket):
    local = os.path.join(work, "local")
    os.makedirs(local)
    names = [f"s{i:05d}.bin" for i in range(FILES)]
    payload = os.urandom(SAMPLE)

    def put(name):
        with open(os.path.join(local, name), "wb") as f:
            f.write(payload)
        stor.write_bytes(f"s3://{bucket}/ds/{name}", payload)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, names))
    paths = [os.path.join(local, n) for n in names]

    s, p = [], []
    for _ in range(ROUNDS):
        s.append(_epoch(stor.torch.IterableDataset(f"s3://{bucket}/ds/", read_ahead=16), 2))
        p.append(_epoch(LocalFiles(paths), 2))
    report(f"epoch {FILES} x {SAMPLE >> 10} KiB, 2 workers: s3://", statistics.median(s), statistics.median(p),
           "samples/s", "local files")

    # tier:// (one process owns a linked namespace: no DataLoader workers; threads read ahead).
    e1, e2 = [], []
    for r in range(ROUNDS):
        fast = os.path.join(work, f"tier{r}")
        os.makedirs(fast)
        stor.link(fast, f"s3://{bucket}/ds")
        ds = stor.torch.IterableDataset(f"tier://{fast}/", read_ahead=16)
        e1.append(_epoch(ds, 0))
        e2.append(_epoch(ds, 0))
    report("epoch through tier:// link: epoch 2 vs 1", statistics.median(e2), statistics.median(e1), "samples/s",
           "epoch 1 (from s3://)")
    report("tier:// epoch 2 vs local files (0 workers)", statistics.median(e2),
           statistics.median([_epoch(LocalFiles(paths), 0) for _ in range(ROUNDS)]), "samples/s", "local files")
    shutil.rmtree(local)


# ---- checkpoints ----------------------------------------------------------------------------

def _state_dict():
    n = 64
    per = CKPT // n // 4
    g = torch.Generator().manual_seed(0)
    return {f"layer{i}.weight": torch.randn(per, generator=g) for i in range(n)}


def bench_checkpoint(work, bucket, endpoint):
    aws = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
    sd = _state_dict()
    size_mb = sum(t.numel() * t.element_size() for t in sd.values()) / 2**20
    local = os.path.join(work, "ckpt.pt")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true")

    def cli(*args):
        subprocess.run([aws, "--endpoint-url", endpoint, "s3", "cp", "--only-show-errors", *args], env=env,
                       check=True)

    def save_cli():
        torch.save(sd, local)
        cli(local, f"s3://{bucket}/ckpt/cli.pt")
        os.remove(local)

    def load_cli():
        cli(f"s3://{bucket}/ckpt/cli.pt", local)
        torch.load(local)
        os.remove(local)

    s_save, s_load, c_save, c_load = [], [], [], []
    for _ in range(ROUNDS):
        s_save.append(timed(lambda: stor.torch.save(sd, f"s3://{bucket}/ckpt/direct.pt")))
        s_load.append(timed(lambda: stor.torch.load(f"s3://{bucket}/ckpt/direct.pt")))
        if aws:
            c_save.append(timed(save_cli))
            c_load.append(timed(load_cli))
    if aws:
        report(f"checkpoint save {size_mb:.0f} MiB to s3://", statistics.median(s_save), statistics.median(c_save),
               "s", "torch.save + aws s3 cp", higher_is_better=False)
        report(f"checkpoint load {size_mb:.0f} MiB from s3://", statistics.median(s_load),
               statistics.median(c_load), "s", "aws s3 cp + torch.load", higher_is_better=False)
    else:
        print("checkpoint: the AWS CLI is not installed (apt-get install awscli): no CLI reference")

    uri = f"s3://{bucket}/ckpt/dcp"
    stor.torch.dcp.save_state_dict(sd, stor.torch.StorageWriter(uri), no_dist=True)
    keys = list(sd)
    subset = keys[:max(1, len(keys) // 10)]

    def load(names):
        target = {k: torch.empty_like(sd[k]) for k in names}
        stor.torch.dcp.load_state_dict(target, stor.torch.StorageReader(uri), no_dist=True)

    part, full = [], []
    for _ in range(ROUNDS):
        part.append(timed(lambda: load(subset)))
        full.append(timed(lambda: load(keys)))
    report(f"DCP load {len(subset)} of {len(keys)} tensors vs all", statistics.median(part), statistics.median(full),
           "s", "full load", higher_is_better=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="s3rver endpoint (http://127.0.0.1:PORT)")
    ap.add_argument("--only", choices=["readinto", "epoch", "checkpoint"], action="append")
    args = ap.parse_args()
    stor.configure({"s3.endpoint": args.endpoint, "s3.region": "us-east-1", "s3.access_key": "S3RVER",
                    "s3.secret_key": "S3RVER"})
    work = tempfile.mkdtemp(prefix="stor-py-bench-")
    bucket = f"pybench-{os.getpid()}"
    stor.create_bucket(f"s3://{bucket}")
    print(f"stor {stor.version()} engine {stor.engine()}, torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)
    try:
        parts = args.only or ["readinto", "epoch", "checkpoint"]
        if "readinto" in parts:
            bench_readinto(work)
        if "epoch" in parts:
            bench_epoch(work, bucket)
        if "checkpoint" in parts:
            bench_checkpoint(work, bucket, args.endpoint)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| measurement | stor | reference | ratio |\n| --- | --- | --- | --- |")
    for what, s, r, unit, ref_name, ratio in rows:
        print(f"| {what} | {s:.2f} {unit} | {ref_name}: {r:.2f} {unit} | {ratio:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())

"""stor.torch: streaming save/load, datasets with DataLoader workers (fork, spawn) and ranks, DCP."""
import collections
import io
import json
import os
import tarfile

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

import stor
import stor.torch
import torch_workers


def _state():
    g = torch.Generator().manual_seed(3)
    return {"w": torch.randn(256, 64, generator=g), "b": torch.zeros(64, dtype=torch.bfloat16),
            "ids": torch.arange(10), "meta": {"step": 7, "name": "x"}}


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k]


def test_save_load_round_trip(base_uri):
    uri = stor.join(base_uri, "ckpt.pt")
    state = _state()
    stor.torch.save(state, uri)
    _equal(stor.torch.load(uri), state)
    # What torch.save writes to a local file, byte for byte.
    ref = io.BytesIO()
    torch.save(state, ref)
    assert stor.read_bytes(uri) == ref.getvalue()


def test_failed_save_keeps_the_previous_checkpoint(bucket):
    uri = f"s3://{bucket}/ckpt.pt"
    stor.torch.save({"v": torch.ones(3)}, uri)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    big = torch.zeros(6 << 20, dtype=torch.uint8)  # past the 8 MiB buffer: parts were uploading
    with pytest.raises(RuntimeError):
        stor.torch.save({"big": big, "z": Unpicklable()}, uri)
    assert torch.equal(stor.torch.load(uri)["v"], torch.ones(3))


def _make_objects(prefix, n):
    keys = []
    for i in range(n):
        uri = stor.join(prefix, f"s{i:03d}.bin")
        stor.write_bytes(uri, i.to_bytes(4, "little") * 64)
        keys.append(uri)
    return keys


def _value(sample):
    return int.from_bytes(sample.data[:4], "little")


@pytest.mark.parametrize("workers", [0, 2])
def test_map_dataset(bucket, workers):
    prefix = f"s3://{bucket}/map"
    keys = _make_objects(prefix, 20)
    ds = stor.torch.MapDataset(prefix + "/", transform=_value)
    assert len(ds) == 20 and ds.items == keys
    loader = DataLoader(ds, batch_size=4, num_workers=workers, shuffle=True)
    got = sorted(int(v) for batch in loader for v in batch)
    assert got == list(range(20))


@pytest.mark.parametrize("workers,context", [(0, None), (2, "fork"), pytest.param(2, "spawn", marks=pytest.mark.slow)])
def test_iterable_dataset_each_sample_once_per_epoch(bucket, workers, context):
    prefix = f"s3://{bucket}/it"
    keys = _make_objects(prefix, 24)
    ds = stor.torch.IterableDataset(prefix, shuffle=True, seed=1, read_ahead=4)
    orders = []
    for epoch in range(1 if context == "spawn" else 2):  # spawned workers import torch: ~10 s an epoch
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context=context)
        seen = [s.key for s in loader]
        assert sorted(seen) == keys
        orders.append(seen)
    if len(orders) == 2:
        assert orders[0] != orders[1]  # reshuffled per epoch
    ds.set_epoch(0)
    assert [s.key for s in ds] == [s.key for s in stor.torch.IterableDataset(prefix, shuffle=True, seed=1)]


def test_sharding_covers_ranks_and_workers_exactly_once(tmp_path):
    items = [f"nvme://{tmp_path}/x{i}" for i in range(37)]
    for epoch in range(3):
        seen = collections.Counter()
        for rank in range(3):
            ds = stor.torch.IterableDataset(items, shuffle=True, seed=5, rank=rank, world_size=3)
            ds.set_epoch(epoch)
            for w in range(4):
                seen.update(ds.shard(w, 4))
        assert seen == collections.Counter(items)


def test_tar_shards_and_byte_ranges(base_uri, tmp_path):
    members = {}
    shards = []
    for s in range(3):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for m in range(5):
                name = f"{s:02d}_{m:02d}.cls"
                data = os.urandom(1000 + 300 * m)
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                members[name] = data
        uri = stor.join(base_uri, f"shard{s}.tar")
        stor.write_bytes(uri, buf.getvalue())
        shards.append(uri)
    ds = stor.torch.IterableDataset(shards, shuffle=True, seed=2, read_ahead=3, shuffle_buffer=4)
    # A tier:// namespace is owned by one process at a time (its state directory is flock()ed).
    workers = 0 if base_uri.startswith("tier:") else 2
    got = {s.key.split("#", 1)[1]: s.data for s in DataLoader(ds, batch_size=None, num_workers=workers)}
    assert got == members

    big = stor.join(base_uri, "big.bin")
    payload = os.urandom(100000)
    stor.write_bytes(big, payload)
    ranges = [(big, off, 1000) for off in range(0, 100000, 10000)]
    samples = list(stor.torch.IterableDataset(ranges, read_ahead=4))
    assert [s.data for s in samples] == [payload[o:o + 1000] for _, o, _ in ranges]
    assert stor.torch.MapDataset(ranges)[3].data == payload[30000:31000]
    with pytest.raises(EOFError):
        stor.torch.MapDataset([(big, 99990, 20)])[0]


def _spawn(fn, *args):
    mp.spawn(fn, args=args, nprocs=2, join=True)


@pytest.mark.slow
def test_distributed_ranks_each_sample_once_per_epoch(bucket, tmp_path):
    prefix = f"s3://{bucket}/dist"
    keys = _make_objects(prefix, 16)
    out = tmp_path / "seen.json"
    _spawn(torch_workers.epochs_run, 2, str(tmp_path / "pg"), prefix, str(out), 2)
    seen = json.loads(out.read_text())
    orders = []
    for per_rank in seen:
        everything = [k for rank_keys in per_rank for k in rank_keys]
        assert sorted(everything) == keys  # each sample once per epoch across 2 ranks x 2 workers
        assert all(per_rank)  # both ranks got samples
        orders.append(everything)
    assert orders[0] != orders[1]


@pytest.mark.slow
def test_dcp_save_on_two_ranks_then_partial_load(bucket, tmp_path):
    uri = f"s3://{bucket}/dcp"
    out = tmp_path / "dcp.json"
    _spawn(torch_workers.dcp_run, 2, str(tmp_path / "pg"), uri, str(out))
    results = json.loads(out.read_text())
    assert all(r["ok"] for r in results)
    assert results[0]["files"] == ["__0_0.distcp", "__1_0.distcp"]  # each rank wrote its own file
    # Each rank read its own 4 rows x 5 float32 of the sharded tensor: nothing else.
    assert [r["bytes_read"] for r in results] == [4 * 5 * 4, 4 * 5 * 4]

    # Another subset, without a process group: one replicated tensor and the bytes item.
    target = {"plain_b": torch.zeros(300, dtype=torch.int64), "step": 0}
    reader = stor.torch.StorageReader(uri)
    stor.torch.dcp.load_state_dict(target, reader, no_dist=True)
    assert torch.equal(target["plain_b"], torch.arange(300))
    assert target["step"] == 42
    step_len = [loc.length for index, loc in reader.storage_data.items() if index.fqn == "step"][0]
    assert reader.bytes_read == 300 * 8 + step_len  # plain_a and the sharded tensor were not read

"""Per-rank bodies of the distributed tests (run under torch.multiprocessing.spawn; importable by
the spawned children, which get the parent's sys.path and stor configuration)."""
import json
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import stor
import stor.torch


def _init(rank, world, init_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)


def epochs_run(rank, world, init_file, prefix, out_file, epochs):
    """Each rank reads the dataset through a DataLoader with 2 workers; rank 0 records what every
    rank saw, per epoch."""
    _init(rank, world, init_file)
    ds = stor.torch.IterableDataset(prefix, shuffle=True, seed=7)
    seen = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
        keys = [s.key for s in loader]
        gathered = [None] * world
        dist.all_gather_object(gathered, keys)
        seen.append(gathered)
    if rank == 0:
        with open(out_file, "w") as f:
            json.dump(seen, f)
    dist.barrier()
    dist.destroy_process_group()


def _sharded(rows, cols, world):
    from torch.distributed._shard import sharded_tensor
    from torch.distributed._shard.sharding_spec import ChunkShardingSpec
    spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])
    return sharded_tensor.empty(spec, rows, cols)


def dcp_run(rank, world, init_file, uri, out_file):
    """Saves a state_dict with a row-sharded tensor (each rank writes its rows) and replicated
    ones, then loads back only the sharded tensor on both ranks."""
    _init(rank, world, init_file)
    st = _sharded(8, 5, world)
    for shard in st.local_shards():
        r0 = shard.metadata.shard_offsets[0]
        n = shard.tensor.shape[0]
        shard.tensor.copy_(torch.arange((r0) * 5, (r0 + n) * 5, dtype=torch.float32).reshape(n, 5))
    state = {"sharded": st, "plain_a": torch.full((1000,), 1.5), "plain_b": torch.arange(300, dtype=torch.int64),
             "step": 42}
    writer = stor.torch.StorageWriter(uri)
    stor.torch.dcp.save_state_dict(state, writer)
    dist.barrier()

    target = {"sharded": _sharded(8, 5, world)}
    reader = stor.torch.StorageReader(uri)
    stor.torch.dcp.load_state_dict(target, reader)
    ok = True
    for shard in target["sharded"].local_shards():
        r0 = shard.metadata.shard_offsets[0]
        n = shard.tensor.shape[0]
        ok &= torch.equal(shard.tensor, torch.arange(r0 * 5, (r0 + n) * 5, dtype=torch.float32).reshape(n, 5))
    files = sorted(n for n in stor.listdir(uri) if n.endswith(".distcp"))
    result = {"rank": rank, "ok": bool(ok), "bytes_read": reader.bytes_read, "files": files}
    gathered = [None] * world
    dist.all_gather_object(gathered, result)
    if rank == 0:
        with open(out_file, "w") as f:
            json.dump(gathered, f)
    dist.barrier()
    dist.destroy_process_group()

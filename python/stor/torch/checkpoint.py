"""Distributed checkpoints (torch.distributed.checkpoint, "DCP") on any stor URI.

StorageWriter / StorageReader implement the DCP storage interface of the installed torch:
torch.distributed.checkpoint (torch >= 2.0: set_up_storage_*, reset, validate_checkpoint_id) or
torch.distributed._shard.checkpoint (torch 1.13: init). `stor.torch.dcp` is whichever module
this torch has, for save_state_dict / load_state_dict.

Layout under the checkpoint URI: one data file per rank (and per writer thread),
"__RANK_T.distcp", holding each item's raw bytes back to back (tensors as their contiguous
memory, other objects pickled by the planner), and ".metadata", DCP's Metadata pickled, whose
storage_data maps every item to (file, offset, length, dtype, shape). Every rank writes its own
files at the same time. A load reads only the items the state_dict asks for, each by a ranged
read of its bytes straight into the destination tensor when the shapes allow (else into a
staging tensor, then copied), with all of a file's reads in flight at once.
"""
import dataclasses
import io
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch.futures import Future

import stor

from ._compat import import_dcp

dcp, _planner, _storage = import_dcp()
LoadItemType, WriteItemType, WriteResult = _planner.LoadItemType, _planner.WriteItemType, _storage.WriteResult

__all__ = ["StorageWriter", "StorageReader", "dcp"]

_METADATA = ".metadata"
_SUFFIX = ".distcp"


@dataclass
class _ItemLocation:
    """Where one item's bytes are (Metadata.storage_data values)."""
    relative_path: str
    offset: int
    length: int
    dtype: object = None   # torch.dtype of a tensor item; None for bytes
    shape: Tuple[int, ...] = ()


def _as_bytes(t):
    """A contiguous CPU tensor's memory as a writable byte buffer (any dtype, also bfloat16)."""
    return t.reshape(-1).view(torch.uint8).numpy()


def _object_store(uri):
    return uri.startswith(("s3://", "s3express://"))


class _CheckpointUri:
    """torch >= 2.0 names a checkpoint per save/load (checkpoint_id): here, its URI."""

    def reset(self, checkpoint_id=None):
        if checkpoint_id is not None:
            self.uri = str(checkpoint_id).rstrip("/")

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id):
        return "://" in str(checkpoint_id)


class StorageWriter(_CheckpointUri, dcp.StorageWriter):
    """Writes a DCP checkpoint under `uri` (a directory on file systems, a prefix on object
    stores). thread_count files per rank are written concurrently (the writes release the GIL)."""

    def __init__(self, uri, thread_count=1, sync_files=True):
        super().__init__()
        self.uri = str(uri).rstrip("/")
        self.thread_count = max(1, thread_count)
        self.sync_files = sync_files
        self.is_coordinator = False

    # torch >= 2.0 calls set_up_storage_writer (and reset, from _CheckpointUri); 1.13 calls init().
    def set_up_storage_writer(self, is_coordinator):
        self.is_coordinator = is_coordinator

    def init(self, is_coordinator):
        self.is_coordinator = is_coordinator

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, global_plan):
        if not _object_store(self.uri):
            try:
                stor.mkdir(self.uri)
            except FileExistsError:
                pass
        return [dataclasses.replace(plan, storage_data=f"__{i}_") for i, plan in enumerate(global_plan)]

    def _write_file(self, name, items, planner):
        results = []
        with stor.File(stor.join(self.uri, name), "wb") as f:
            offset = 0
            for item in items:
                data = planner.resolve_data(item)
                if item.type == WriteItemType.BYTE_IO:
                    buf, dtype, shape = data.getbuffer(), None, ()
                else:
                    t = data.detach().cpu().contiguous()
                    buf, dtype, shape = _as_bytes(t), t.dtype, tuple(t.shape)
                n = len(memoryview(buf).cast("B"))
                written = 0
                while written < n:
                    written += f.write(memoryview(buf).cast("B")[written:])
                results.append(WriteResult(index=item.index, size_in_bytes=n,
                                           storage_data=_ItemLocation(name, offset, n, dtype, shape)))
                offset += n
            if self.sync_files and not _object_store(self.uri):
                f.sync()
        return results

    def write_data(self, plan, planner):
        prefix = plan.storage_data
        groups = [plan.items[i::self.thread_count] for i in range(self.thread_count)]
        groups = [g for g in groups if g] or [[]]
        if len(groups) == 1:
            results = self._write_file(f"{prefix}0{_SUFFIX}", groups[0], planner)
        else:
            with ThreadPoolExecutor(len(groups)) as pool:
                parts = [pool.submit(self._write_file, f"{prefix}{i}{_SUFFIX}", g, planner)
                         for i, g in enumerate(groups)]
                results = [r for p in parts for r in p.result()]
        fut = Future()
        fut.set_result(results)
        return fut

    def finish(self, metadata, results):
        metadata.storage_data = {wr.index: wr.storage_data for rank_results in results for wr in rank_results}
        data = pickle.dumps(metadata)
        if _object_store(self.uri):
            stor.write_bytes(stor.join(self.uri, _METADATA), data)  # an object appears whole
        else:
            tmp = stor.join(self.uri, _METADATA + ".tmp")
            with stor.File(tmp, "wb") as f:
                f.write(data)
                f.sync()
            stor.rename(tmp, stor.join(self.uri, _METADATA))

    def storage_meta(self):
        return None


def _narrow(t, offsets, lengths):
    for dim, (off, length) in enumerate(zip(offsets, lengths)):
        t = t.narrow(dim, off, length)
    return t


class StorageReader(_CheckpointUri, dcp.StorageReader):
    """Reads a checkpoint StorageWriter wrote; only the items the planner asks for, by ranged
    reads. bytes_read counts what this reader fetched (for checking partial loads)."""

    def __init__(self, uri):
        super().__init__()
        self.uri = str(uri).rstrip("/")
        self.storage_data: Dict = {}
        self.bytes_read = 0

    def read_metadata(self):
        return pickle.loads(stor.read_bytes(stor.join(self.uri, _METADATA)))

    def set_up_storage_reader(self, metadata, is_coordinator):
        self.storage_data = metadata.storage_data

    def init(self, metadata, is_coordinator):
        self.storage_data = metadata.storage_data

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, global_plan):
        return global_plan

    def read_data(self, plan, planner):
        per_file: Dict[str, List] = {}
        for req in plan.items:
            per_file.setdefault(self.storage_data[req.storage_index].relative_path, []).append(req)
        for name, reqs in per_file.items():
            with stor.File(stor.join(self.uri, name), "rb") as f:
                # Every read of the file in flight at once, each into its final memory.
                started = []
                for req in sorted(reqs, key=lambda r: self.storage_data[r.storage_index].offset):
                    loc = self.storage_data[req.storage_index]
                    if req.type == LoadItemType.BYTE_IO:
                        started.append((req, loc, None, None, f.read_async(loc.offset, loc.length)))
                        continue
                    target = planner.resolve_tensor(req).detach()
                    whole = all(o == 0 for o in req.storage_offsets) and tuple(req.lengths) == tuple(loc.shape)
                    if whole and target.dtype == loc.dtype and target.is_contiguous() and target.device.type == "cpu":
                        dst = target  # the bytes land in the destination itself
                    else:
                        dst = torch.empty(loc.shape, dtype=loc.dtype)
                    started.append((req, loc, target, dst, f.readinto_async(_as_bytes(dst), loc.offset)))
                for req, loc, target, dst, fut in started:
                    got = len(fut.result()) if target is None else fut.result()
                    if got != loc.length:
                        raise stor._errors.from_status(
                            "Corruption", f"{stor.join(self.uri, name)}: item {req.storage_index.fqn} "
                                          f"has {got} of its {loc.length} bytes")
                    self.bytes_read += got
                    if target is None:
                        planner.load_bytes(req, io.BytesIO(fut.result()))
                        continue
                    if dst is not target:
                        src = _narrow(dst, req.storage_offsets, req.lengths)
                        assert target.size() == src.size(), f"{req.storage_index}: {target.size()} vs {src.size()}"
                        target.copy_(src)
                    planner.commit_tensor(req, target)
        fut = Future()
        fut.set_result(None)
        return fut

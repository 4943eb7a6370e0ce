"""Datasets over stor URIs for torch.utils.data.DataLoader.

A sample source is a list of items, each one of
  - "URI":                       a whole object or file is one sample;
  - ("URI", offset, length):     a byte range of a large file is one sample (a ranged read);
  - "URI" of a tar shard (*.tar, or tar=True): every regular member is one sample, the shard
    streamed with read-ahead (webdataset layout).
or a prefix URI, listed once (recursively) into whole-object items.

MapDataset: __getitem__(i) fetches item i (DataLoader's samplers, DistributedSampler, shard).
IterableDataset: splits the items between DataLoader workers and distributed ranks (each item
once per epoch across the job), shuffles their order per epoch with a seed, and reads the next
items while the current one is consumed.

Both are plain picklable objects (URIs and options; no handle, no thread until iteration), so
they work with DataLoader(num_workers > 0) under fork and spawn: stor's store is per process,
and stor.configure() settings reach spawned workers through the environment.
"""
import collections
import io
import os
import random
import tarfile
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import torch.distributed as _dist
import torch.utils.data as _tud

import stor

__all__ = ["Sample", "MapDataset", "IterableDataset", "list_objects"]


class Sample(NamedTuple):
    key: str     # the URI; "URI:OFFSET+LENGTH" for a byte range; "URI#MEMBER" for a tar member
    data: bytes


def list_objects(prefix, suffixes=None):
    """Every file under prefix (a directory or object prefix, recursively), sorted; a prefix
    naming one file gives that file."""
    try:
        if not stor.stat(prefix).is_dir():
            return [prefix]
    except FileNotFoundError:
        if not prefix.startswith(("s3://", "s3express://")):
            raise  # an object prefix is not an object: list it below
    out = []
    for dirpath, _, files in stor.walk(prefix):
        out += [stor.join(dirpath, f) for f in files]
    if suffixes:
        out = [u for u in out if u.endswith(tuple(suffixes))]
    return sorted(out)


def _items(source, suffixes):
    if isinstance(source, (str, os.PathLike)):
        return list_objects(os.fspath(source), suffixes)
    items = []
    for it in source:
        if isinstance(it, (tuple, list)):
            uri, offset, length = it
            items.append((os.fspath(uri), int(offset), int(length)))
        else:
            items.append(os.fspath(it))
    return items


def _read_item(item):
    if isinstance(item, tuple):
        uri, offset, length = item
        with stor.File(uri, "rb") as f:
            data = f.pread(offset, length)
        if len(data) != length:
            raise stor._errors.from_status("OutOfRange", f"{uri}: range {offset}+{length} ends past the end "
                                                         f"({offset + len(data)})")
        return Sample(f"{uri}:{offset}+{length}", data)
    return Sample(item, stor.read_bytes(item))


def _world():
    if _dist.is_available() and _dist.is_initialized():
        return _dist.get_rank(), _dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class MapDataset(_tud.Dataset):
    """Random access to the items of a source (see the module doc); transform(Sample) is applied
    to each fetched sample."""

    def __init__(self, source, transform=None, suffixes=None):
        self.items = _items(source, suffixes)
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        sample = _read_item(self.items[index])
        return self.transform(sample) if self.transform is not None else sample


class _ChunkStream(io.RawIOBase):
    """A file read front to back with up to `depth` chunk reads in flight (read_async)."""

    def __init__(self, uri, chunk=4 << 20, depth=4):
        super().__init__()
        self._f = stor.File(uri, "rb")
        self._size = self._f.size()
        self._chunk, self._depth = chunk, max(1, depth)
        self._next_off = 0
        self._pending = collections.deque()
        self._cur, self._cur_pos = b"", 0

    def readable(self):
        return True

    def _fill(self):
        while len(self._pending) < self._depth and self._next_off < self._size:
            n = min(self._chunk, self._size - self._next_off)
            self._pending.append(self._f.read_async(self._next_off, n))
            self._next_off += n

    def readinto(self, b):
        mv = memoryview(b).cast("B")
        if self._cur_pos == len(self._cur):
            self._fill()
            if not self._pending:
                return 0
            self._cur, self._cur_pos = self._pending.popleft().result(), 0
            self._fill()
        n = min(len(mv), len(self._cur) - self._cur_pos)
        mv[:n] = self._cur[self._cur_pos:self._cur_pos + n]
        self._cur_pos += n
        return n

    def close(self):
        if not self.closed:
            self._pending.clear()  # each future waits for its read as it goes
            self._f.close()
        super().close()


def _tar_samples(uri, read_ahead):
    with _ChunkStream(uri, depth=read_ahead) as raw, \
            tarfile.open(fileobj=io.BufferedReader(raw, 1 << 20), mode="r|") as tar:
        for member in tar:
            if member.isfile():
                yield Sample(f"{uri}#{member.name}", tar.extractfile(member).read())


class IterableDataset(_tud.IterableDataset):
    """Streams the items of a source (see the module doc).

    Each epoch the item order is shuffled with random.Random(seed + epoch) (shuffle=True), then
    split round-robin over rank * num_workers + worker_id, so every item goes to exactly one
    worker of one rank. Call set_epoch(epoch) before each epoch (as with DistributedSampler).
    rank/world_size default to torch.distributed's when initialized (else RANK/WORLD_SIZE), taken
    when the dataset is made and at set_epoch, so spawned workers know them too.
    read_ahead: objects (or chunks of a tar shard) read while the current one is consumed.
    shuffle_buffer > 0 also shuffles samples within a window of that many (for tar members).
    """

    def __init__(self, source, shuffle=False, seed=0, read_ahead=8, transform=None, suffixes=None, tar=None,
                 shuffle_buffer=0, rank=None, world_size=None):
        self.items = _items(source, suffixes)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.read_ahead = max(1, read_ahead)
        self.transform, self.tar, self.shuffle_buffer = transform, tar, shuffle_buffer
        self._explicit_world = (rank, world_size) if rank is not None else None
        self._world = self._explicit_world or _world()

    def set_epoch(self, epoch):
        self.epoch = epoch
        if self._explicit_world is None:
            self._world = _world()

    def _is_tar(self, item):
        if self.tar is not None:
            return self.tar
        return isinstance(item, str) and item.endswith(".tar")

    def shard(self, worker_id=0, num_workers=1):
        """The items this worker of this rank reads in the current epoch, in order."""
        order = list(range(len(self.items)))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        rank, world = self._world
        total = world * num_workers
        return [self.items[i] for i in order[rank * num_workers + worker_id::total]]

    def _samples(self, items):
        objects = [it for it in items if not self._is_tar(it)]
        # Whole objects and ranges: `read_ahead` fetches in flight on a thread pool (the reads
        # release the GIL); tar shards: streamed one by one with chunk read-ahead.
        if objects:
            with ThreadPoolExecutor(self.read_ahead) as pool:
                pending = collections.deque()
                it = iter(items)
                try:
                    for item in it:
                        if self._is_tar(item):
                            while pending:
                                yield pending.popleft().result()
                            yield from _tar_samples(item, self.read_ahead)
                            continue
                        pending.append(pool.submit(_read_item, item))
                        if len(pending) >= self.read_ahead:
                            yield pending.popleft().result()
                    while pending:
                        yield pending.popleft().result()
                finally:
                    for f in pending:
                        f.cancel()
        else:
            for item in items:
                yield from _tar_samples(item, self.read_ahead)

    def __iter__(self):
        info = _tud.get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        samples = self._samples(self.shard(worker_id, num_workers))
        if self.shuffle_buffer > 0:
            samples = _buffer_shuffle(samples, self.shuffle_buffer,
                                      random.Random(hash((self.seed, self.epoch, self._world[0], worker_id))))
        for s in samples:
            yield self.transform(s) if self.transform is not None else s


def _buffer_shuffle(samples, size, rng):
    buf = []
    for s in samples:
        buf.append(s)
        if len(buf) >= size:
            yield buf.pop(rng.randrange(len(buf)))
    rng.shuffle(buf)
    yield from buf

"""PyTorch on stor: datasets that stream from any stor URI, and checkpoints written straight to it.

    import stor.torch
    ds = stor.torch.IterableDataset("s3://bucket/train/", shuffle=True, seed=0)   # shards per worker and rank
    ds.set_epoch(epoch)
    stor.torch.save(model.state_dict(), "s3express://bucket/ckpt/step100.pt")      # streamed, multipart
    sd = stor.torch.load("s3express://bucket/ckpt/step100.pt")
    dcp.save_state_dict(sd, stor.torch.StorageWriter("s3://bucket/ckpt/dcp"))       # every rank in parallel
    dcp.load_state_dict(subset, stor.torch.StorageReader("s3://bucket/ckpt/dcp"))   # ranged reads of the subset

See docs/python.md.
"""
import torch as _torch

import stor as _stor

from .data import MapDataset, IterableDataset, Sample, list_objects
from .checkpoint import StorageWriter, StorageReader, dcp

__all__ = ["save", "load", "MapDataset", "IterableDataset", "Sample", "list_objects", "StorageWriter",
           "StorageReader", "dcp"]

# Writes go out in pieces this large (one S3 multipart part each at the default s3.part_size).
_STREAM_BUFFER = 8 << 20


def save(obj, uri, **kwargs):
    """torch.save(obj) straight into uri: the zip stream is written as it is produced (an S3
    object by multipart upload, in bounded memory; no temporary local file). If saving fails the
    object is not published and a previous checkpoint at uri stays as it was."""
    with _stor.open(uri, "wb", buffering=_STREAM_BUFFER) as f:
        _torch.save(obj, f, **kwargs)


def load(uri, map_location=None, **kwargs):
    """torch.load from uri, reading the checkpoint's records through the file object (tensor
    bytes land in their storages by readinto; nothing is staged on local disk)."""
    with _stor.open(uri, "rb", buffering=_STREAM_BUFFER) as f:
        return _torch.load(f, map_location=map_location, **kwargs)

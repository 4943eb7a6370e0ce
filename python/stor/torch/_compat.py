"""Imports the DCP module of the installed torch.

torch 1.13 (Debian 12's python3-torch) ships DCP as torch.distributed._shard.checkpoint, and
that package does not import on Python 3.11: sharded_tensor/metadata.py declares a dataclass
field `field(default=TensorProperties())`, a default of an unhashable dataclass, which Python
3.11's dataclasses refuse ("mutable default ... use default_factory"). torch fixed it upstream
with default_factory. When the import fails that way, it is retried once with dataclasses
turning such defaults into default_factory copies (what the fix does), for the duration of
that import only.
"""
import copy
import dataclasses
import sys


def _lenient_get_field(original):
    def get_field(cls, name, type_, *rest):
        f = cls.__dict__.get(name, dataclasses.MISSING)
        if isinstance(f, dataclasses.Field):
            d = f.default
            if d is not dataclasses.MISSING and dataclasses.is_dataclass(d) and type(d).__hash__ is None:
                f.default, f.default_factory = dataclasses.MISSING, (lambda d=d: copy.deepcopy(d))
        return original(cls, name, type_, *rest)
    return get_field


def import_dcp():
    """(dcp module, its planner module, its storage module)."""
    try:  # torch >= 2.0
        import torch.distributed.checkpoint as dcp
        import torch.distributed.checkpoint.planner as planner
        import torch.distributed.checkpoint.storage as storage
        return dcp, planner, storage
    except ImportError:
        pass
    try:
        import torch.distributed._shard.checkpoint as dcp
    except ValueError as e:
        if "mutable default" not in str(e):
            raise
        for name in [m for m in sys.modules if m.startswith("torch.distributed._shard")]:
            del sys.modules[name]  # the half-imported package
        original = dataclasses._get_field
        dataclasses._get_field = _lenient_get_field(original)
        try:
            import torch.distributed._shard.checkpoint as dcp
        finally:
            dataclasses._get_field = original
    import torch.distributed._shard.checkpoint.planner as planner
    import torch.distributed._shard.checkpoint.storage as storage
    return dcp, planner, storage

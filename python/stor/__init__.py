"""stor from Python: files, listings and asynchronous reads on every stor backend.

    import stor
    stor.configure({"s3.endpoint": "http://127.0.0.1:9000"})     # optional: backend settings
    with stor.open("s3://bucket/data/x.bin", "rb") as f:        # nvme://, lustre://, s3express://, tier://
        header = f.read(16)
    n = stor.open("nvme:///data/x.bin", "rb", buffering=0).readinto(numpy_array)

See docs/python.md. Errors raise stor.StorError subclasses that are also the matching built-in
exceptions (FileNotFoundError, PermissionError, ...). Blocking calls release the GIL.
"""
import atexit as _atexit
import io as _io
import json as _json
import os as _os
from typing import NamedTuple as _NamedTuple

from . import _stor
from ._errors import (StorError, NotFound, PermissionDenied, AlreadyExists, IsADirectory, NotADirectory, Timeout,
                      InvalidArgument, Unsupported, Unavailable, OutOfRange, NotEmpty, NoSpace, Busy, IoError,
                      Corruption, Aborted)

__all__ = [
    "configure", "open", "File", "stat", "StatResult", "exists", "listdir", "scandir", "DirEntry", "walk", "remove",
    "mkdir", "rename", "copy", "read_bytes", "write_bytes", "mkfs", "create_bucket", "link", "version", "engine",
    "join", "StorError", "NotFound", "PermissionDenied", "AlreadyExists", "IsADirectory", "NotADirectory", "Timeout",
    "InvalidArgument", "Unsupported", "Unavailable", "OutOfRange", "NotEmpty", "NoSpace", "Busy", "IoError",
    "Corruption", "Aborted",
]

# configure() is also recorded here, so processes started from this one (DataLoader workers with
# the spawn start method, torch.multiprocessing) configure themselves the same way on import.
_CONFIG_ENV = "STOR_PYTHON_CONFIG"
DEFAULT_BUFFER_SIZE = 1 << 20


def configure(settings=None, engine="auto", queue_depth=0, threads=0, plugin_dir=""):
    """Sets the backend settings ({"s3.endpoint": ..., "lustre.x": ...}, see docs/settings.md) and
    engine of this process's stor store, and of processes it starts. Files already open keep the
    store they were opened with."""
    cfg = {"settings": {str(k): str(v) for k, v in (settings or {}).items()}, "engine": engine,
           "queue_depth": int(queue_depth), "threads": int(threads), "plugin_dir": str(plugin_dir)}
    _stor.configure(**cfg)
    _os.environ[_CONFIG_ENV] = _json.dumps(cfg)


if _os.environ.get(_CONFIG_ENV):
    _stor.configure(**_json.loads(_os.environ[_CONFIG_ENV]))
_atexit.register(_stor._shutdown)


def version():
    return _stor.version()


def engine():
    """The I/O engine serving this process: "io_uring" or "threadpool"."""
    return _stor.engine_name()


class File(_io.RawIOBase):
    """A stor file as a raw Python file object (what stor.open(uri, mode, buffering=0) returns).

    Besides the io.RawIOBase calls: pread/preadinto at an offset (no seek), read_async /
    readinto_async returning futures (many reads in flight from one thread), sync, abort (close
    without publishing: an object store keeps its previous object).
    """

    def __init__(self, uri, mode="rb", direct=False, perm=0o644):
        super().__init__()
        self._h = None  # close() (also io's __del__) then has nothing to do if the open fails
        if mode not in ("rb", "wb", "xb", "r+b", "w+b"):
            raise ValueError(f"mode {mode!r}: stor files open with rb, wb, xb, r+b or w+b")
        self._h = _stor.open(uri, mode, direct, perm)
        self._mode = mode
        if self.readable():
            # The native readinto at the (native) position, called without a Python frame: what
            # readinto below does, minus ~5% of a cached 1 MiB read (see _stor's readinto_at_position).
            self.readinto = self._h.readinto_function()

    # The position lives in the native handle, where readinto advances it.
    @property
    def _pos(self):
        return self._h.pos

    @_pos.setter
    def _pos(self, pos):
        self._h.pos = pos

    @property
    def name(self):
        return self._h.uri

    @property
    def mode(self):
        return self._mode

    def readable(self):
        return self._mode in ("rb", "r+b", "w+b")

    def writable(self):
        return self._mode != "rb"

    def seekable(self):
        return True

    def _check_readable(self):
        self._checkClosed()
        if not self.readable():
            raise _io.UnsupportedOperation("File not open for reading")

    def _check_writable(self):
        self._checkClosed()
        if not self.writable():
            raise _io.UnsupportedOperation("File not open for writing")

    def readinto(self, b):
        """Fills b (any writable buffer: bytearray, memoryview, numpy array, CPU tensor) from the
        current position, straight from the backend; returns the bytes read (0 at end of file).
        (A readable file's instances use the native equivalent, set in __init__.)"""
        self._check_readable()
        n = self._h.readinto(b, self._pos)
        self._pos += n
        return n

    def read(self, size=-1):
        self._check_readable()
        if size is None or size < 0:
            return self.readall()
        data = self._h.pread(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self):
        self._check_readable()
        data = self._h.pread(self._pos, max(0, self._h.size() - self._pos))
        self._pos += len(data)
        return data

    def pread(self, offset, length):
        """Up to length bytes at offset, as bytes; the position does not move."""
        self._check_readable()
        return self._h.pread(offset, length)

    def preadinto(self, b, offset):
        """Fills b from offset; returns the bytes read. The position does not move."""
        self._check_readable()
        return self._h.readinto(b, offset)

    def read_async(self, offset, length):
        """Starts reading up to length bytes at offset; .result() gives a bytearray."""
        self._check_readable()
        return self._h.read_async(offset, length)

    def readinto_async(self, b, offset):
        """Starts filling b from offset; .result() gives the count. b must not be touched (nor
        resized) until then; dropping the future waits for the read."""
        self._check_readable()
        return self._h.readinto_async(b, offset)

    def write(self, b):
        self._check_writable()
        n = self._h.write(b, self._pos)
        self._pos += n
        return n

    def seek(self, offset, whence=_io.SEEK_SET):
        self._checkClosed()
        if whence == _io.SEEK_SET:
            pos = offset
        elif whence == _io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == _io.SEEK_END:
            pos = self._h.size() + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self):
        self._checkClosed()
        return self._pos

    def truncate(self, size=None):
        self._check_writable()
        size = self._pos if size is None else size
        self._h.truncate(size)
        return size

    def size(self):
        self._checkClosed()
        return self._h.size()

    def sync(self, data_only=False):
        self._checkClosed()
        self._h.sync(data_only)

    def set_read_pieces(self, n):
        """How many concurrent requests one large read (>= 4 MiB a piece) is split into (default 1:
        the backends fan out themselves; more helps a cold local file on the thread-pool engine)."""
        self._h.set_read_pieces(n)

    def close(self):
        if not self.closed:
            try:
                if self._h is not None:
                    self._h.close()
            finally:
                super().close()

    def abort(self):
        """Closes without publishing what was written (object stores keep the old object)."""
        if not self.closed:
            try:
                if self._h is not None:
                    self._h.close(abort=True)
            finally:
                super().close()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.writable():
            self.abort()
        else:
            self.close()

    def __repr__(self):
        return f"<stor.File uri={self.name!r} mode={self._mode!r}>"


class Buffered(_io.BufferedIOBase):
    """The buffered file stor.open returns: an io.BufferedReader / BufferedWriter / BufferedRandom
    over a stor.File, behind an io.BufferedIOBase that does not claim to be one of those classes
    (numpy 1.24 takes any io.BufferedReader for a file with a descriptor). Its with-block aborts
    a write that raised, so an object store keeps its previous object."""

    def __init__(self, buffered):
        super().__init__()
        self._b = buffered

    raw = property(lambda self: self._b.raw)
    name = property(lambda self: self._b.raw.name)
    mode = property(lambda self: self._b.raw.mode)
    closed = property(lambda self: self._b.closed)

    def readable(self):
        return self._b.readable()

    def writable(self):
        return self._b.writable()

    def seekable(self):
        return True

    def read(self, size=-1):
        return self._b.read(size)

    def read1(self, size=-1):
        return self._b.read1(size)

    def readinto(self, b):
        return self._b.readinto(b)

    def readinto1(self, b):
        return self._b.readinto1(b)

    def peek(self, size=0):
        return self._b.peek(size)

    def readline(self, size=-1):
        return self._b.readline(size)

    def write(self, b):
        return self._b.write(b)

    def flush(self):
        self._b.flush()

    def seek(self, offset, whence=_io.SEEK_SET):
        return self._b.seek(offset, whence)

    def tell(self):
        return self._b.tell()

    def truncate(self, size=None):
        return self._b.truncate(size)

    def detach(self):
        return self._b.detach()

    def close(self):
        self._b.close()

    def abort(self):
        """Drops the buffer and closes without publishing what was written."""
        if not self._b.closed:
            self._b.raw.abort()  # the buffered close sees a closed raw file and returns
        self._b.close()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.writable():
            self.abort()
        else:
            self.close()

    def __del__(self):
        pass  # the wrapped object closes itself when collected

    def __repr__(self):
        return f"<stor.Buffered {self._b!r}>"


def open(uri, mode="rb", buffering=-1, encoding=None, errors=None, newline=None, direct=False, perm=0o644):
    """Opens a stor URI (or a plain path) like the built-in open: "rb", "wb", "xb", "r+b", "w+b" and
    their text forms ("r", "w", ...). buffering=0 gives the raw stor.File; otherwise a stor.Buffered
    (io.BufferedReader/Writer/Random inside; its with-block aborts a write that raised) with
    buffering bytes of buffer (default 1 MiB), and for text modes an io.TextIOWrapper over it."""
    text = "b" not in mode
    if "t" in mode and not text:
        raise ValueError("can't have text and binary mode at once")
    base = mode.replace("t", "").replace("b", "")
    raw_mode = {"r": "rb", "w": "wb", "x": "xb", "r+": "r+b", "w+": "w+b"}.get(base)
    if raw_mode is None:
        raise ValueError(f"mode {mode!r}: stor supports r, w, x, r+, w+ (binary or text); no append")
    if text and buffering == 0:
        raise ValueError("can't have unbuffered text I/O")
    raw = File(uri, raw_mode, direct=direct, perm=perm)
    if buffering == 0:
        return raw
    size = DEFAULT_BUFFER_SIZE if buffering in (-1, 1) else buffering
    try:
        if raw_mode == "rb":
            f = Buffered(_io.BufferedReader(raw, size))
        elif raw_mode in ("wb", "xb"):
            f = Buffered(_io.BufferedWriter(raw, size))
        else:
            f = Buffered(_io.BufferedRandom(raw, size))
    except BaseException:
        raw.close()
        raise
    if text:
        return _io.TextIOWrapper(f, encoding=encoding, errors=errors, newline=newline)
    return f


class StatResult(_NamedTuple):
    path: str
    type: str       # "file", "dir", "block", "other"
    size: int
    mode: int       # permission bits where the backend has them
    uid: int
    gid: int
    mtime_ns: int
    etag: str       # object stores; "" elsewhere

    @property
    def st_size(self):
        return self.size

    @property
    def st_mtime(self):
        return self.mtime_ns / 1e9

    def is_dir(self):
        return self.type == "dir"

    def is_file(self):
        return self.type == "file"


def stat(uri):
    return StatResult(*_stor.stat(_os.fspath(uri)))


def exists(uri):
    try:
        _stor.stat(_os.fspath(uri))
        return True
    except FileNotFoundError:
        return False


def join(base, *names):
    """Joins URI components with '/' ("s3://b" + "k" -> "s3://b/k")."""
    out = _os.fspath(base)
    for n in names:
        n = n.lstrip("/")
        out = out + n if out.endswith("/") else out + "/" + n
    return out


class DirEntry(_NamedTuple):
    name: str
    path: str   # the entry's URI
    type: str
    size: int

    def is_dir(self):
        return self.type == "dir"

    def is_file(self):
        return self.type == "file"


def scandir(uri):
    """Iterates the entries of a directory (or an object-store prefix): DirEntry(name, path, type,
    size). The backend lists the directory in one call (S3: every page of the level); entries are
    handed out one by one."""
    uri = _os.fspath(uri)
    for name, type_, size in _stor.list(uri):
        yield DirEntry(name, join(uri, name), type_, size)


def listdir(uri):
    return [e.name for e in scandir(uri)]


def walk(top, topdown=True, onerror=None):
    """Like os.walk over stor URIs: yields (dirpath, dirnames, filenames), listing one directory at
    a time as the caller iterates."""
    top = _os.fspath(top)
    try:
        entries = list(scandir(top))
    except StorError as e:
        if onerror is not None:
            onerror(e)
        return
    dirs = [e.name for e in entries if e.is_dir()]
    files = [e.name for e in entries if not e.is_dir()]
    if topdown:
        yield top, dirs, files
    for d in dirs:
        yield from walk(join(top, d), topdown, onerror)
    if not topdown:
        yield top, dirs, files


def remove(uri):
    _stor.remove(_os.fspath(uri))


def mkdir(uri, mode=0o755):
    _stor.mkdir(_os.fspath(uri), mode)


def rename(src, dst):
    _stor.rename(_os.fspath(src), _os.fspath(dst))


def copy(src, dst):
    """Copies one file between any two backends (reads ahead while writing); returns the bytes
    copied. An object-store destination is published only when complete."""
    return _stor.copy(_os.fspath(src), _os.fspath(dst))


def read_bytes(uri):
    """The whole file as bytes (read straight into one new bytes object)."""
    h = _stor.open(_os.fspath(uri), "rb")
    try:
        return h.pread(0, h.size())
    finally:
        h.close()


def write_bytes(uri, data):
    """Replaces the file with data (an object store gets one new object)."""
    h = _stor.open(_os.fspath(uri), "wb")
    try:
        n = h.write(data, 0)
    except BaseException:
        h.close(abort=True)
        raise
    h.close()
    return n


def mkfs(dir, targets=4, stripe_size=1 << 20, stripe_count=1):
    """Creates a Lustre-style file system in a local directory (then reachable as lustre://DIR)."""
    _stor.mkfs(_os.fspath(dir), targets, stripe_size, stripe_count)


def create_bucket(uri):
    """Creates the bucket an s3:// or s3express:// URI names; returns its name."""
    return _stor.create_bucket(uri)


def link(fast_dir, cold_uri, fast_root=""):
    """Links a local directory to a cold root (e.g. s3://bucket/prefix): tier://FAST_DIR/...
    then serves the cold objects, fetching each on first read. Returns the records imported."""
    return _stor.link(_os.fspath(fast_dir), cold_uri, fast_root)

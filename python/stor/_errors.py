"""stor errors as Python exceptions.

Every stor error is a StorError (an OSError) carrying stor's code name (``e.code``, e.g.
"NotFound") and message (``str(e)``); where a built-in exception means the same thing the class
also derives from it, so ``except FileNotFoundError`` works on a missing S3 object.
"""
import errno as _errno
import io as _io


class StorError(OSError):
    """Base class of stor's errors: an OSError with stor's code and message."""

    code = "Internal"

    def __str__(self):
        return self.strerror if self.strerror is not None else super().__str__()


class NotFound(StorError, FileNotFoundError):
    code = "NotFound"


class PermissionDenied(StorError, PermissionError):
    code = "PermissionDenied"


class AlreadyExists(StorError, FileExistsError):
    code = "AlreadyExists"


class IsADirectory(StorError, IsADirectoryError):
    code = "IsADirectory"


class NotADirectory(StorError, NotADirectoryError):
    code = "NotADirectory"


class Timeout(StorError, TimeoutError):
    code = "Timeout"


class InvalidArgument(StorError, ValueError):
    code = "InvalidArgument"


class Unsupported(StorError, _io.UnsupportedOperation):
    code = "Unsupported"


class Unavailable(StorError, ConnectionError):
    code = "Unavailable"


class OutOfRange(StorError, EOFError):
    code = "OutOfRange"


class NotEmpty(StorError):
    code = "NotEmpty"


class NoSpace(StorError):
    code = "NoSpace"


class Busy(StorError):
    code = "Busy"


class IoError(StorError):
    code = "IoError"


class Corruption(StorError):
    code = "Corruption"


class Aborted(StorError):
    code = "Aborted"


_ERRNO = {
    "InvalidArgument": _errno.EINVAL,
    "NotFound": _errno.ENOENT,
    "PermissionDenied": _errno.EACCES,
    "AlreadyExists": _errno.EEXIST,
    "OutOfRange": _errno.ERANGE,
    "IoError": _errno.EIO,
    "Unsupported": _errno.EOPNOTSUPP,
    "NotADirectory": _errno.ENOTDIR,
    "IsADirectory": _errno.EISDIR,
    "NotEmpty": _errno.ENOTEMPTY,
    "NoSpace": _errno.ENOSPC,
    "Busy": _errno.EBUSY,
    "Corruption": _errno.EBADMSG,
    "Timeout": _errno.ETIMEDOUT,
    "Unavailable": _errno.EAGAIN,
    "Aborted": _errno.ECANCELED,
    "Internal": _errno.EIO,
}

_BY_CODE = {cls.code: cls for cls in (
    NotFound, PermissionDenied, AlreadyExists, IsADirectory, NotADirectory, Timeout, InvalidArgument,
    Unsupported, Unavailable, OutOfRange, NotEmpty, NoSpace, Busy, IoError, Corruption, Aborted)}


def from_status(code, message):
    """The exception for a stor status (called by the native module)."""
    cls = _BY_CODE.get(code, StorError)
    e = cls(_ERRNO.get(code, _errno.EIO), message)
    if cls is StorError:
        e.code = code
    return e

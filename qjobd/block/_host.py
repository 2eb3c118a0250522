"""Thin wrappers around the Linux calls Python's ``os`` module lacks.

``os`` has ``posix_fallocate`` but not ``fallocate(2)`` with a mode, and hole punching
is what keeps copy targets sparse, so it is reached through ctypes, as is
``sync_file_range(2)``, which lets a copy start the writeback a later flush waits
for.  ctypes releases the GIL around foreign calls, so a big punch does not stall
the event loop thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from typing import Final

FALLOC_FL_KEEP_SIZE: Final = 0x01
FALLOC_FL_PUNCH_HOLE: Final = 0x02
FALLOC_FL_ZERO_RANGE: Final = 0x10

SYNC_FILE_RANGE_WRITE: Final = 0x02

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_fallocate.restype = ctypes.c_int
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    _sync_file_range.restype = ctypes.c_int

# Zero detection compares slices against a block of zeroes.  ``bytearray.__eq__`` with
# a buffer argument is a plain memcmp, while comparing two memoryviews walks items one
# by one (about fifty times slower), hence the bound method kept here.
_ZERO_STEP: Final = 1 << 20
_ZERO_BLOCK = bytearray(_ZERO_STEP)
_ZERO_EQ = _ZERO_BLOCK.__eq__
_ZEROES = bytes(_ZERO_STEP)


def zero_bytes(length: int) -> bytes:
    """``length`` zero bytes, shared when small enough."""
    return _ZEROES[:length] if length <= _ZERO_STEP else bytes(length)


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """Whether every byte of ``data`` is zero."""
    view = memoryview(data).cast("B")
    total = len(view)
    offset = 0
    while total - offset >= _ZERO_STEP:
        if not _ZERO_EQ(view[offset:offset + _ZERO_STEP]):
            return False
        offset += _ZERO_STEP
    if offset < total:
        return bool(_ZEROES[:total - offset] == view[offset:].tobytes())
    return True


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2); raises OSError with the errno on failure."""
    while True:
        if _fallocate(fd, mode, offset, length) == 0:
            return
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range's dirty pages to disk, without waiting
    (sync_file_range with SYNC_FILE_RANGE_WRITE).

    Only a hint: it makes nothing durable and orders nothing (fdatasync does both),
    but a flush that follows finds less to write, because the disk worked while the
    caller went on.  Failures are ignored.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a range without changing the file size (reads back as zeroes)."""
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)


def pread_full(fd: int, buffer: memoryview, offset: int) -> int:
    """Fill ``buffer`` from ``fd`` at ``offset``; returns bytes read (short only at EOF)."""
    done = 0
    total = len(buffer)
    while done < total:
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if got == 0:
            break
        done += got
    return done


def pwrite_full(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (pwrite may write less than asked)."""
    view = memoryview(data)
    done = 0
    total = len(view)
    while done < total:
        done += os.pwrite(fd, view[done:], offset + done)

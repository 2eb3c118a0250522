"""The data mover under backup, mirror and image creation jobs.

``copy_chunk`` copies one chunk (typically 1-16 MiB) from a source node to a target
node at the same offset and keeps holes holes:

1. ``block_status`` splits the chunk into data and zero extents.
2. Zero extents become holes in the target (``write_zeroes`` with unmap, i.e. a
   punched hole), or are skipped when the caller says the target already reads as
   zeroes (a freshly created image).
3. Data extents go through ``os.copy_file_range`` when both nodes are plain files
   (or raw windows over them), so the kernel moves the bytes without a round trip
   through Python; otherwise - blkdebug, null-co, O_DIRECT, other filesystems
   (EXDEV), kernels without it - through a reusable per-thread buffer with
   ``readinto``/``pwrite``.  With ``detect_zeroes`` the buffered path also turns
   all-zero data into holes.

Failures are ``CopyError``: an ``OSError`` carrying the errno plus ``operation``
("read" or "write") saying which side failed, because jobs apply on-source-error
and on-target-error separately.  When copy_file_range itself fails with an error
that cannot be attributed (EIO), the range is retried through the buffered path,
which then fails on the side that is really broken.

Every call is independent (no shared state but thread-local buffers), so a job may
run several chunk copies at once from worker threads.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Final, Literal

import attrs

from qjobd.block import _host
from qjobd.block.node import BlockNode, BlockStatus

DEFAULT_CHUNK: Final = 4 << 20
Operation = Literal["read", "write"]


class CopyError(OSError):
    """An I/O error during a copy, with the side that failed in ``operation``."""

    def __init__(self, operation: Operation, error: OSError) -> None:
        code = error.errno if error.errno is not None else errno.EIO
        super().__init__(code, os.strerror(code))
        self.operation: Operation = operation
        self.__cause__ = error

    def __reduce__(self) -> tuple[type[CopyError], tuple[Operation, OSError]]:
        return CopyError, (self.operation, OSError(self.errno, self.strerror))


@attrs.define
class CopyResult:
    """What one ``copy_chunk`` did, in bytes."""

    #: Data extents written to the target.
    copied: int = 0
    #: Zero extents (or zero data) made zero in the target.
    zeroed: int = 0
    #: Zero extents left alone because the target already read as zeroes.
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.copied + self.zeroed + self.skipped

    def __iadd__(self, other: CopyResult) -> CopyResult:
        self.copied += other.copied
        self.zeroed += other.zeroed
        self.skipped += other.skipped
        return self


_local = threading.local()


def _buffer(size: int) -> memoryview:
    """This thread's scratch buffer, at least ``size`` bytes."""
    buf: bytearray | None = getattr(_local, "buffer", None)
    if buf is None or len(buf) < size:
        buf = bytearray(size)
        _local.buffer = buf
    return memoryview(buf)[:size]


def copy_chunk(src: BlockNode, dst: BlockNode, offset: int, length: int, *,
               target_zeroed: bool = False, detect_zeroes: bool = False,
               use_copy_range: bool = True) -> CopyResult:
    """Copy ``[offset, offset + length)`` from ``src`` to ``dst``; see the module doc.

    ``target_zeroed``: the target range already reads as zeroes, so zero extents are
    skipped rather than punched.  ``detect_zeroes``: scan data for all-zero runs and
    write those as holes (forces the buffered path).  ``use_copy_range=False``
    forces the buffered path (tests, or filesystems known to misbehave).
    Raises ``CopyError``.
    """
    result = CopyResult()
    pos = offset
    end = offset + length
    while pos < end:
        try:
            kind, count = src.block_status(pos, end - pos)
        except OSError as exc:
            raise CopyError("read", exc) from exc
        if kind is BlockStatus.ZERO:
            _zero(dst, pos, count, target_zeroed, result)
        else:
            _copy_data(src, dst, pos, count, result, target_zeroed=target_zeroed,
                       detect_zeroes=detect_zeroes, use_copy_range=use_copy_range)
        pos += count
    return result


def _zero(dst: BlockNode, offset: int, length: int, target_zeroed: bool,
          result: CopyResult) -> None:
    if target_zeroed:
        result.skipped += length
        return
    try:
        dst.write_zeroes(offset, length, may_unmap=True)
    except OSError as exc:
        raise CopyError("write", exc) from exc
    result.zeroed += length


def _copy_data(src: BlockNode, dst: BlockNode, offset: int, length: int,
               result: CopyResult, *, target_zeroed: bool, detect_zeroes: bool,
               use_copy_range: bool) -> None:
    if use_copy_range and not detect_zeroes:
        done = _copy_range(src, dst, offset, length)
        result.copied += done
        offset += done
        length -= done
    if length:
        _copy_buffered(src, dst, offset, length, result, target_zeroed=target_zeroed,
                       detect_zeroes=detect_zeroes)


def _copy_range(src: BlockNode, dst: BlockNode, offset: int, length: int) -> int:
    """copy_file_range as far as it goes; returns the bytes copied (maybe 0).

    The source says where its data lies in an OS file (a raw file, or a qcow2
    image's data clusters, run by run), as QEMU's copy_range does.
    """
    dst_fd = dst.passthrough_fd()
    if dst_fd is None or dst.read_only or dst.closed:
        return 0
    dfd, dshift = dst_fd
    done = 0
    try:
        while done < length:
            extent = src.host_extent(offset + done, length - done)
            if extent is None:
                break
            sfd, host, count = extent
            got = os.copy_file_range(sfd, dfd, count, host, offset + done + dshift)
            if got == 0:
                # Source file ended early (shrunk under us): let the buffered path
                # read the rest as zeroes.
                break
            done += got
    except OSError:
        # Fallback errnos mean "not here"; others (EIO, ENOSPC) are re-raised by
        # the buffered path with the failing side identified.
        pass
    if done:
        dst.mark_written(offset, done)
    return done


def _copy_buffered(src: BlockNode, dst: BlockNode, offset: int, length: int,
                   result: CopyResult, *, target_zeroed: bool, detect_zeroes: bool) -> None:
    step = min(length, DEFAULT_CHUNK * 4)
    pos = offset
    end = offset + length
    while pos < end:
        size = min(step, end - pos)
        view = _buffer(size)
        try:
            src.readinto(pos, view)
        except OSError as exc:
            raise CopyError("read", exc) from exc
        if detect_zeroes and _host.is_zero(view):
            _zero(dst, pos, size, target_zeroed, result)
        else:
            try:
                dst.pwrite(pos, view)
            except OSError as exc:
                raise CopyError("write", exc) from exc
            result.copied += size
        pos += size


def copy_all(src: BlockNode, dst: BlockNode, *, chunk_size: int = DEFAULT_CHUNK,
             target_zeroed: bool = False, detect_zeroes: bool = False,
             use_copy_range: bool = True, length: int | None = None) -> CopyResult:
    """Copy the whole source (or ``length`` bytes) chunk by chunk; for tools and tests."""
    total = src.length() if length is None else length
    result = CopyResult()
    for pos in range(0, total, chunk_size):
        result += copy_chunk(src, dst, pos, min(chunk_size, total - pos),
                             target_zeroed=target_zeroed, detect_zeroes=detect_zeroes,
                             use_copy_range=use_copy_range)
    return result

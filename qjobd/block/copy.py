"""The data mover under backup, mirror and image creation jobs.

``copy_chunk`` copies one chunk (typically 1-16 MiB) from a source node to a target
node at the same offset and keeps holes holes:

1. ``block_status`` splits the chunk into data and zero extents.
2. Zero extents become holes in the target (``write_zeroes`` with unmap, i.e. a
   punched hole), or are skipped when the caller says the target already reads as
   zeroes (a freshly created image).
3. Data extents go through ``os.copy_file_range`` when the source's bytes lie in
   plain files (``host_extent``: a raw file or window, a qcow2 image's data
   clusters, down its backing chain) and the target can place them in one
   (``write_direct``: a raw file, or qcow2 clusters over a plain file, new ones
   allocated and pointed at once the data is in them), so the kernel moves the
   bytes without a round trip through Python; otherwise - blkdebug, null-co,
   O_DIRECT, compressed clusters, other filesystems (EXDEV), kernels without it -
   through a reusable per-thread buffer with ``readinto``/``pwrite``.  With
   ``detect_zeroes`` the buffered path also turns all-zero data into holes.

Failures are ``CopyError``: an ``OSError`` carrying the errno plus ``operation``
("read" or "write") saying which side failed, because jobs apply on-source-error
and on-target-error separately.  When copy_file_range itself fails with an error
that cannot be attributed (EIO), the range is retried through the buffered path,
which then fails on the side that is really broken.

Every call is independent (no shared state but thread-local buffers), so a job may
run several chunk copies at once from worker threads.
"""

from __future__ import annotations

import bisect
import errno
import os
import threading
from typing import Final, Literal

import attrs

from qjobd.block import _host
from qjobd.block.node import BlockNode, BlockStatus

DEFAULT_CHUNK: Final = 4 << 20
#: What one buffered write carries at most; into a target with detect-zeroes, a
#: file-to-file write too, so that what counts as "all zero" is the same unit.
WRITE_STEP: Final = DEFAULT_CHUNK * 4
#: Bytes read at the start of a range to prove it is not all zero (detect-zeroes).
NONZERO_PROBE: Final = 4096
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
               use_copy_range: bool = True, write_behind: bool = False) -> CopyResult:
    """Copy ``[offset, offset + length)`` from ``src`` to ``dst``; see the module doc.

    ``target_zeroed``: the target range already reads as zeroes, so zero extents are
    skipped rather than punched.  ``detect_zeroes``: scan data for all-zero runs and
    write those as holes (forces the buffered path).  ``use_copy_range=False``
    forces the buffered path (tests, or filesystems known to misbehave).
    ``write_behind``: the caller flushes the target soon, so the kernel starts
    writing what copy_file_range put there at once (a hint, see
    ``_host.start_writeback``), and the flush finds the disk's work mostly done.
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
                       detect_zeroes=detect_zeroes, use_copy_range=use_copy_range,
                       write_behind=write_behind)
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
               use_copy_range: bool, write_behind: bool) -> None:
    if use_copy_range and not detect_zeroes:
        done = _copy_range(src, dst, offset, length, write_behind)
        result.copied += done
        offset += done
        length -= done
    if length:
        _copy_buffered(src, dst, offset, length, result, target_zeroed=target_zeroed,
                       detect_zeroes=detect_zeroes)


def _copy_range(src: BlockNode, dst: BlockNode, offset: int, length: int,
                write_behind: bool) -> int:
    """copy_file_range as far as it goes; returns the bytes copied (maybe 0).

    The source says where its data lies in OS files (a raw file, or a qcow2
    image's data clusters, run by run, down its backing chain), as QEMU's
    copy_range does; the target places it (:meth:`BlockNode.write_direct`: the
    file itself, or a qcow2 image's clusters).
    """
    done = 0
    detect = dst.detect_zeroes != "off"
    while done < length:
        size = min(length - done, WRITE_STEP) if detect else length - done
        try:
            runs = _SourceRuns(src, offset + done, size, write_behind)
            if not runs.length:
                break
            # A target with detect-zeroes gets a write step as data only when it is
            # not all zero; a nonzero byte at its start proves that cheaply (random
            # data, the usual case), otherwise the buffered path looks at all of it.
            known_nonzero = detect and runs.starts_nonzero()
            if detect and not known_nonzero:
                break
            if not dst.write_direct(offset + done, runs.length, runs,
                                    known_nonzero=known_nonzero):
                break
        except OSError:
            # Fallback errnos mean "not here"; others (EIO, ENOSPC) are re-raised by
            # the buffered path with the failing side identified.
            break
        done += runs.length
    return done


class _SourceRuns:
    """Where the bytes of a source range lie in OS files, found before the target
    places them (so that the target's fill reads no node while the target holds
    its lock): (offset, fd, file offset, count) runs, as far as the source has them.
    It is the HostFill the target calls."""

    def __init__(self, src: BlockNode, offset: int, length: int,
                 write_behind: bool) -> None:
        self.write_behind = write_behind
        self.runs: list[tuple[int, int, int, int]] = []
        pos = offset
        end = offset + length
        while pos < end:
            extent = src.host_extent(pos, end - pos)
            if extent is None:
                break
            fd, host, count = extent
            count = min(count, end - pos)
            if count <= 0:
                break
            self.runs.append((pos, fd, host, count))
            pos += count
        self.starts = [run[0] for run in self.runs]
        self.length = pos - offset

    def starts_nonzero(self) -> bool:
        """Whether the range's first bytes (up to NONZERO_PROBE) are not all zero."""
        _, fd, host, count = self.runs[0]
        try:
            head = os.pread(fd, min(count, NONZERO_PROBE), host)
        except OSError:
            return False
        return bool(head) and not _host.is_zero(head)

    def check(self, fd: int) -> None:
        """Whether the kernel copies from the first run's file into ``fd`` (a
        HostFill's check): a copy of nothing fails as a real one would across
        filesystems (EXDEV), before the target allocates clusters for it."""
        _, source_fd, host, _ = self.runs[0]
        os.copy_file_range(source_fd, fd, 0, host, 0)

    def __call__(self, fd: int, position: int, guest: int, count: int) -> None:
        """Copy source bytes [guest, guest + count) to ``fd`` at ``position``
        (a HostFill); raises OSError when the kernel will not."""
        if self.write_behind:
            first, total = position, count
        index = bisect.bisect_right(self.starts, guest) - 1
        while count:
            start, source_fd, host, run_count = self.runs[index]
            skip = guest - start
            part = min(run_count - skip, count)
            _copy_file_range_full(source_fd, host + skip, fd, position, part)
            guest += part
            position += part
            count -= part
            index += 1
        if self.write_behind:
            _host.start_writeback(fd, first, total)


def _copy_file_range_full(source_fd: int, source: int, fd: int, position: int,
                          count: int) -> None:
    done = 0
    while done < count:
        got = os.copy_file_range(source_fd, fd, count - done, source + done, position + done)
        if got == 0:
            # The source file ended early (shrunk under us): the buffered path
            # reads the rest as zeroes.
            raise OSError(errno.EIO, "copy_file_range: the source file ended early")
        done += got


def _copy_buffered(src: BlockNode, dst: BlockNode, offset: int, length: int,
                   result: CopyResult, *, target_zeroed: bool, detect_zeroes: bool) -> None:
    step = min(length, WRITE_STEP)
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

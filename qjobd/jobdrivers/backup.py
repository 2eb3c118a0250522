"""The backup job: a point-in-time copy of a node onto a target of the same size.

Setting up (:func:`setup_backup`) makes QEMU's checks in QEMU's order, so a client
sees qemu-storage-daemon 7.2's error for the first thing wrong, then changes the graph
as QEMU's backup does:

* a ``copy-before-write`` filter (:class:`BackupFilter`) goes above the source and
  takes over the source's parents.  It needs read on the source and lets nobody else
  write or resize it, so every write that still reaches the source goes through the
  filter, which first copies the old data of chunks not yet backed up to the target
  (that is what makes the copy point-in-time; ``sync=none`` relies on nothing else).
* the filter holds the target as its ``target`` child, needing write and sharing
  neither write nor resize: only this job writes the target.
* op blockers on the filter and the target make other jobs and ``blockdev-del``
  answer "Node 'x' is busy: block device is in use by block job: backup".

The data path (:class:`BackupDriver`): the source is split into 1 MiB chunks (QEMU's
block-copy task size, so progress and error offsets come out as QSD's) tracked in a
:class:`ChunkMap`; progress counts whole backup clusters (64 KiB, or the target's
larger cluster size, as block-copy's).  ``sync=top`` first limits the map to the
clusters the source's top image allocates (data or zero clusters; what its backing
chain holds is not copied, so a target backed by the same chain stays unallocated
there), as QEMU's skip-unallocated pass does.  A pass copies the chunks still dirty with
:func:`qjobd.block.copy_chunk` (copy_file_range, holes skipped or punched, so the
target stays sparse), as many per worker-thread round trip as fit in a few
milliseconds, or one at a time under a speed limit; between round trips the job
passes its pause point and rate limit.  A chunk that fails stays dirty.  Like QEMU's
64 parallel workers, the chunks in flight after a failure (the next ``max-workers``;
none under a speed limit) are still copied, then the error policy applies:

* ``report`` (and ``enospc``/``auto`` on anything but ENOSPC): BLOCK_JOB_ERROR, then
  the job fails with the errno's text (BLOCK_JOB_COMPLETED's ``error``);
* ``stop`` (``enospc``/``auto`` on ENOSPC): BLOCK_JOB_ERROR, the job pauses with
  io-status failed/nospace; ``job-resume`` starts a new pass, which retries the chunk;
* ``ignore``: BLOCK_JOB_ERROR, then a new pass retries the chunk later.

Cancelling never abandons a chunk half way (worker threads finish theirs), so the
target holds, chunk by chunk, either its old or the source's content.  As in QEMU,
the job does not flush a target the client opened (blockdev-backup); an image it
opened itself (drive-backup) is flushed before it is closed, whatever the outcome.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import attrs
import trio

from qjobd.block import (
    PERM_ALL,
    BlockGraph,
    BlockNode,
    BlockStatus,
    CopyError,
    FilterNode,
    Perm,
    chain,
    copy_chunk,
)
from qjobd.block.node import Edge
from qjobd.errors import QMPError
from qjobd.jobdrivers.blockjob import BlockJobDriver, BlockJobOptions
from qjobd.jobs.job import Job

if TYPE_CHECKING:
    from qjobd.jobs.manager import JobManager
    from qjobd.jobs.transaction import Transaction

__all__ = [
    "CHUNK_SIZE",
    "CLUSTER_SIZE",
    "BackupDriver",
    "BackupFilter",
    "BackupOptions",
    "ChunkMap",
    "setup_backup",
]

logger = logging.getLogger(__name__)

#: QEMU's default block-copy cluster size, and its least: targets with larger
#: clusters get theirs (block_copy_calculate_cluster_size); progress is counted in
#: whole clusters.
CLUSTER_SIZE: Final = 64 << 10
#: One chunk: the unit of copying, progress, failure and cancellation.
CHUNK_SIZE: Final = 1 << 20
#: Without a speed limit, one worker-thread round trip copies chunks for up to this
#: long (and at most BATCH_CHUNKS of them): a few data chunks, or hundreds of holes.
#: It bounds how late a pause or cancel takes effect.
BATCH_SECONDS: Final = 0.005
BATCH_CHUNKS: Final = 256
#: QEMU's default number of parallel block-copy workers (x-perf max-workers).
DEFAULT_MAX_WORKERS: Final = 64
_INT_MAX: Final = 2**31 - 1
#: After a pass that copied nothing but failed, wait this long before retrying
#: (on-error=ignore against a persistent error would otherwise spin).
RETRY_BACKOFF: Final = 0.1

#: How often an idle sync=none job picks up what its filter copied.
PROGRESS_INTERVAL: Final = 0.1

#: What the copy-before-write filter asks of the source and of the target.
SOURCE_UNSHARED: Final = Perm.WRITE | Perm.RESIZE
TARGET_PERMS: Final = (Perm.WRITE, PERM_ALL & ~(Perm.WRITE | Perm.RESIZE))

_inside_copy = threading.local()


def round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def backup_cluster_size(target: BlockNode) -> int:
    """block_copy_calculate_cluster_size: the target's cluster size, at least 64 KiB
    (writing less than a target cluster would make the target copy on write)."""
    info = target.get_info()
    return max(CLUSTER_SIZE, info[0]) if info is not None else CLUSTER_SIZE


class ChunkMap:
    """Which chunks of the source still have to reach the target; thread-safe.

    The job's worker threads and the filter's copy-before-write both copy through
    :meth:`copy`, which claims a chunk so that it is copied exactly once.  After
    :meth:`restrict` (``sync=top``) only some clusters of each chunk are copied.
    """

    def __init__(self, length: int, chunk_size: int = CHUNK_SIZE,
                 cluster_size: int = CLUSTER_SIZE) -> None:
        self.length = length
        self.chunk_size = chunk_size
        self.cluster_size = cluster_size
        self.count = (length + chunk_size - 1) // chunk_size
        #: Progress total: the length in whole clusters (QEMU's dirty-bitmap count).
        self.total = round_up(length, cluster_size)
        self._done = bytearray(self.count)
        self._busy = bytearray(self.count)
        #: After restrict: one byte per cluster, 1 for those to copy.
        self._clusters: bytearray | None = None
        self._cond = threading.Condition()
        #: Bytes (in clusters) of the chunks copied so far.
        self.done_bytes = 0

    def extent(self, index: int) -> tuple[int, int]:
        """(offset, length) of chunk ``index``."""
        offset = index * self.chunk_size
        return offset, min(self.chunk_size, self.length - offset)

    def _cluster_span(self, index: int) -> tuple[int, int]:
        """[first, end) clusters of chunk ``index``."""
        per_chunk = self.chunk_size // self.cluster_size
        first = index * per_chunk
        return first, min(first + per_chunk, -(-self.length // self.cluster_size))

    def weight(self, index: int) -> int:
        """What chunk ``index`` counts for in the progress (whole clusters)."""
        if self._clusters is not None:
            first, end = self._cluster_span(index)
            return self._clusters.count(1, first, end) * self.cluster_size
        offset = index * self.chunk_size
        return min(self.chunk_size, self.total - offset)

    def extents(self, index: int) -> list[tuple[int, int]]:
        """The (offset, length) runs of chunk ``index`` to copy: the whole chunk, or
        after :meth:`restrict` its runs of clusters to copy."""
        if self._clusters is None:
            return [self.extent(index)]
        clusters = self._clusters
        first, end = self._cluster_span(index)
        runs: list[tuple[int, int]] = []
        start = clusters.find(1, first, end)
        while start >= 0:
            stop = clusters.find(0, start, end)
            stop = end if stop < 0 else stop
            offset = start * self.cluster_size
            runs.append((offset, min(stop * self.cluster_size, self.length) - offset))
            start = clusters.find(1, stop, end)
        return runs

    def restrict(self, ranges: list[tuple[int, int]]) -> None:
        """Copy only the clusters that ``ranges`` touch (block_copy_reset_unallocated):
        the total shrinks to them, chunks without any are done.

        Slice operations only, so a 1 TiB map takes milliseconds.
        """
        size = self.cluster_size
        per_chunk = self.chunk_size // size
        clusters = bytearray(-(-self.length // size))
        untouched = bytearray(b"\x01") * self.count
        for offset, length in ranges:
            first, end = offset // size, -(-(offset + length) // size)
            clusters[first:end] = b"\x01" * (end - first)
            chunk, stop = first // per_chunk, -(-end // per_chunk)
            untouched[chunk:stop] = bytes(stop - chunk)
        with self._cond:
            # A chunk being or already copied (copy-before-write got there first)
            # keeps counting what it counted.
            for flags in (self._done, self._busy):
                index = flags.find(1)
                while index >= 0:
                    first, end = self._cluster_span(index)
                    clusters[first:end] = b"\x01" * (end - first)
                    untouched[index] = 0
                    index = flags.find(1, index + 1)
            self._clusters = clusters
            self.total = clusters.count(1) * size
            done = int.from_bytes(self._done, "big") | int.from_bytes(untouched, "big")
            self._done[:] = done.to_bytes(self.count, "big")

    def indices(self, offset: int, length: int) -> range:
        """The chunks a byte range touches."""
        end = min(offset + length, self.length)
        if end <= offset:
            return range(0)
        return range(offset // self.chunk_size, (end - 1) // self.chunk_size + 1)

    def next_dirty(self, start: int, stop: int | None = None) -> int | None:
        """The first chunk at or after ``start`` (and before ``stop``) not yet copied."""
        limit = self.count if stop is None else min(stop, self.count)
        if start >= limit:
            return None
        index = self._done.find(0, start, limit)
        return None if index < 0 else index

    @property
    def complete(self) -> bool:
        return self._done.find(0) < 0

    def is_done(self, index: int) -> bool:
        return bool(self._done[index])

    def mark_done(self, first: int, last: int) -> None:
        """Count chunks ``first`` .. ``last - 1`` as copied (they hold zeroes on both
        sides); chunks another thread is copying are left to it."""
        with self._cond:
            for index in range(first, last):
                if not self._done[index] and not self._busy[index]:
                    self._done[index] = 1
                    self.done_bytes += self.weight(index)

    def copy(self, index: int, copier: Callable[[int, int], None]) -> CopyError | None:
        """Copy chunk ``index`` with ``copier(offset, length)`` unless it is done.

        Waits while another thread copies the same chunk.  Returns the CopyError
        that left the chunk dirty, or None.
        """
        with self._cond:
            while self._busy[index]:
                self._cond.wait()
            if self._done[index]:
                return None
            self._busy[index] = 1
        ok = False
        try:
            copier(*self.extent(index))
            ok = True
            return None
        except CopyError as error:
            return error
        finally:
            with self._cond:
                self._busy[index] = 0
                if ok:
                    self._done[index] = 1
                    self.done_bytes += self.weight(index)
                self._cond.notify_all()


class BackupCopier:
    """Copies chunks from the source to the target; shared by the job and its filter."""

    def __init__(self, source: BlockNode, target: BlockNode, chunks: ChunkMap, *,
                 target_zeroed: bool, use_copy_range: bool,
                 write_behind: bool = False) -> None:
        self.source = source
        self.target = target
        self.chunks = chunks
        self.target_zeroed = target_zeroed
        self.target_backed = chain.backing_chain_next(target) is not None
        self.use_copy_range = use_copy_range
        #: The target is flushed at the end (an image the job opened): its disk
        #: writes may start as the copy goes.
        self.write_behind = write_behind

    def _target_reads_zeroes(self, offset: int, length: int) -> bool:
        """Whether the target range is a hole already (zero extents can be skipped).

        Only this job writes the target, so what holds before its chunk is copied
        holds while it is copied.  A target with a backing file gets its zeroes
        written, as QEMU does (zero clusters hide the backing file's data).
        """
        if self.target_backed:
            return False
        if self.target_zeroed:
            return True
        try:
            kind, count = self.target.block_status(offset, length)
        except OSError:
            return False
        return kind is BlockStatus.ZERO and count >= length

    def _copy_extent(self, offset: int, length: int) -> None:
        """Copy what chunk ``[offset, offset + length)`` has to copy."""
        _inside_copy.active = True
        try:
            runs = self.chunks.extents(offset // self.chunks.chunk_size)
            for start, count in runs:
                copy_chunk(self.source, self.target, start, count,
                           target_zeroed=self._target_reads_zeroes(start, count),
                           use_copy_range=self.use_copy_range,
                           write_behind=self.write_behind)
        finally:
            _inside_copy.active = False

    def copy_chunks(self, indices: list[int], window: int,
                    seconds: float) -> list[tuple[int, CopyError | None]]:
        """Copy chunks in order for about ``seconds``, at least one (blocking).

        A failure does not stop the others at once: chunks less than ``window`` past
        the first failed one are still copied (QEMU's workers in flight).  Returns
        the chunks done, each with its error or None.
        """
        results: list[tuple[int, CopyError | None]] = []
        deadline = time.monotonic() + seconds
        stop: int | None = None
        for index in indices:
            if stop is not None and index >= stop:
                break
            if self.chunks.is_done(index) or self._skip_zero_run(index):
                results.append((index, None))
                continue
            error = self.chunks.copy(index, self._copy_extent)
            results.append((index, error))
            if error is not None and stop is None:
                stop = index + window
            if time.monotonic() >= deadline:
                break
        return results

    def _skip_zero_run(self, index: int) -> bool:
        """Mark the whole hole starting at chunk ``index`` copied, if it is one.

        A sparse image is mostly holes; asking once per hole instead of once per chunk
        keeps the per-chunk cost off the sparse parts.  Only whole chunks count, and
        only where the target reads zeroes too.
        """
        offset, length = self.chunks.extent(index)
        try:
            # The chunk first: asking to the end would walk a whole data run (all
            # of a dense image, chunk after chunk) only to hear "data".
            kind, count = self.source.block_status(offset, length)
            if kind is not BlockStatus.ZERO or count < length:
                return False
            kind, count = self.source.block_status(offset, self.chunks.length - offset)
        except OSError:
            return False
        if kind is not BlockStatus.ZERO:
            return False
        size = self.chunks.chunk_size
        last = (offset + count) // size if offset + count < self.chunks.length \
            else self.chunks.count
        if last <= index:
            return False
        span = min(last * size, self.chunks.length) - offset
        if not self._target_reads_zeroes(offset, span):
            return False
        self.chunks.mark_done(index, last)
        return True

    def before_write(self, offset: int, length: int) -> None:
        """Copy-before-write: save the old data of dirty chunks in the range first."""
        if getattr(_inside_copy, "active", False):
            return  # the backup's own write (a target above its source)
        for index in self.chunks.indices(offset, length):
            error = self.chunks.copy(index, self._copy_extent)
            if error is not None:
                raise OSError(error.errno, error.strerror)


class BackupFilter(FilterNode):
    """The ``copy-before-write`` node above a backup's source."""

    def __init__(self, format_name: str) -> None:
        super().__init__(format_name)
        self.copier: BackupCopier | None = None

    def child_perm(self, edge: Edge, perm: Perm, shared: Perm) -> tuple[Perm, Perm]:
        if edge.fixed is None:
            # The source: what the parents need, read for the copies, and nobody
            # may write or resize it behind the filter's back.
            return perm | Perm.CONSISTENT_READ, shared & ~SOURCE_UNSHARED
        return super().child_perm(edge, perm, shared)

    def _before_write(self, offset: int, length: int) -> None:
        if self.copier is not None:
            self.copier.before_write(offset, length)

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        self._before_write(offset, len(data))
        super()._do_pwrite(offset, data)

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        self._before_write(offset, length)
        super()._do_write_zeroes(offset, length, may_unmap)

    def _do_discard(self, offset: int, length: int) -> None:
        self._before_write(offset, length)
        super()._do_discard(offset, length)


@attrs.frozen
class BackupOptions:
    """A backup request (BackupCommon) after QEMU's defaults, built by the handler."""

    common: BlockJobOptions
    sync: str
    bitmap: str | None = None
    bitmap_mode: str | None = None
    compress: bool = False
    filter_node_name: str | None = None
    #: x-perf: copy with copy_file_range where the nodes allow it.
    use_copy_range: bool = True
    #: x-perf: QEMU's parallel workers; what is in flight after a failure.
    max_workers: int = DEFAULT_MAX_WORKERS
    #: x-perf: the largest chunk (0: no limit beyond CHUNK_SIZE).
    max_chunk: int = 0


def check_bitmap_options(options: BackupOptions) -> None:
    """do_backup_common's bitmap checks, in its order.

    qjobd has no dirty bitmaps, so a named bitmap is never found and only the checks
    that come before the lookup can pass.
    """
    if options.sync in ("bitmap", "incremental") and options.bitmap is None:
        raise QMPError(f"must provide a valid bitmap name for '{options.sync}' sync mode")
    if options.sync == "incremental" and options.bitmap_mode not in (None, "on-success"):
        raise QMPError("Bitmap sync mode must be 'on-success' when using sync mode "
                       "'incremental'")
    if options.bitmap is not None:
        raise QMPError(f"Bitmap '{options.bitmap}' could not be found")
    if options.bitmap_mode is not None:
        raise QMPError("Cannot specify bitmap sync mode without a bitmap")


def setup_backup(
    graph: BlockGraph,
    jobs: JobManager,
    source: BlockNode,
    target: BlockNode,
    options: BackupOptions,
    *,
    txn: Transaction | None = None,
    target_zeroed: bool = False,
    owns_target: bool = False,
) -> Job:
    """QEMU's backup_job_create: check, insert the filter, create the job (not started).

    On failure the graph is as before.  The caller checked the bitmap options and
    owns ``target`` when it opened it itself (drive-backup).
    """
    if source is target:
        raise QMPError("Source and target cannot be the same")
    if options.compress:
        # No driver of qjobd's supports compressed writes.
        raise QMPError("Compression is not supported for this drive ")
    graph.check_op(source, "backup-source")
    graph.check_op(target, "backup-target")
    if not 1 <= options.max_workers <= _INT_MAX:
        raise QMPError(f"max-workers must be between 1 and {_INT_MAX}")
    if options.max_chunk < 0:
        raise QMPError("max-chunk must be zero (which means no limit) or positive")
    length = source.length()
    if target.length() != length:
        raise QMPError("Source and target image have different sizes")

    def make_filter(format_name: str) -> FilterNode:
        return BackupFilter(format_name)

    try:
        cbw = graph.insert_filter("copy-before-write", source,
                                  node_name=options.filter_node_name, factory=make_filter)
    except QMPError as error:
        raise QMPError(f"Could not create node: {error.desc}") from error
    assert isinstance(cbw, BackupFilter)
    try:
        try:
            graph.attach_child(cbw, target, "target", fixed=TARGET_PERMS)
        except QMPError as error:
            raise QMPError(f"Could not create node: {error.desc}") from error
        cluster_size = backup_cluster_size(target)
        if options.max_chunk and options.max_chunk < cluster_size:
            raise QMPError(f"Required max-chunk ({options.max_chunk}) is less than backup "
                           f"cluster size ({cluster_size})")
        chunk_size = max(CHUNK_SIZE, cluster_size)
        if options.max_chunk:
            chunk_size = min(chunk_size, options.max_chunk // cluster_size * cluster_size)
        chunks = ChunkMap(length, chunk_size, cluster_size)
        copier = BackupCopier(source, target, chunks, target_zeroed=target_zeroed,
                              use_copy_range=options.use_copy_range,
                              write_behind=owns_target)
        driver = BackupDriver(graph, cbw, copier, options, owns_target=owns_target)
        job = driver.create_job(jobs, txn)
    except BaseException:
        graph.remove_filter(cbw)
        raise
    cbw.copier = copier
    # What block_job_add_bdrv does for the filter and the target: a reference that
    # needs nothing (so the nodes stay while the job lives) and an op blocker.
    driver.claim(cbw, "main node")
    driver.claim(target, "target")
    driver.block(cbw)
    driver.block(target)
    return job


class BackupDriver(BlockJobDriver):
    """Runs one backup; see the module docstring."""

    job_type = "backup"

    def __init__(self, graph: BlockGraph, cbw: BackupFilter, copier: BackupCopier,
                 options: BackupOptions, *, owns_target: bool = False) -> None:
        super().__init__(graph, options.common)
        self.owns_target = owns_target
        self.cbw = cbw
        self.copier = copier
        self.chunks = copier.chunks
        self.sync = options.sync
        self.max_workers = options.max_workers
        self._cleaned = False

    # Section: the job's work

    async def run(self, job: Job) -> None:
        job.progress_set_remaining(self.chunks.total)
        try:
            if self.sync == "top":
                await self._skip_unallocated(job)
            if self.sync == "none":
                await self._copy_before_write_only(job)
            else:
                await self._copy(job)
        finally:
            if self.owns_target:
                # QEMU flushes an image it opened when it closes it, whatever the
                # outcome; a client-opened target is flushed when the client says.
                with trio.CancelScope(shield=True):
                    await job.run_io(self._flush_target)

    async def _skip_unallocated(self, job: Job) -> None:
        """sync=top: only what the source's top image allocates is to be copied."""
        source = self.copier.source
        base = chain.backing_chain_next(source)

        def restrict() -> None:
            self.chunks.restrict(chain.allocated_ranges(source, base, self.chunks.length))

        await job.run_io(restrict)
        self._update_progress(job)
        job.progress_set_remaining(self.chunks.total - self.chunks.done_bytes)

    def _flush_target(self) -> None:
        try:
            self.copier.target.flush()
        except OSError as error:
            logger.warning("backup target %s: flush failed: %s",
                           self.copier.target.node_name, error)

    async def _copy(self, job: Job) -> None:
        while True:
            progress_before = self.chunks.done_bytes
            failure = await self._pass(job)
            if failure is None:
                break
            code = failure.errno or errno.EIO
            action = self.on_io_error(job, failure.operation, code)
            if action == "report":
                raise OSError(code, os.strerror(code))
            if action == "stop":
                await job.pause_point()
            elif self.chunks.done_bytes == progress_before:
                await job.sleep(RETRY_BACKOFF)

    async def _pass(self, job: Job) -> CopyError | None:
        """Copy every dirty chunk once; returns the first failure, if any."""
        failure: CopyError | None = None
        stop: int | None = None
        cursor = 0
        while True:
            await job.pause_point()
            batch = self._next_batch(cursor, stop, 1 if job.speed else BATCH_CHUNKS)
            if not batch:
                return failure
            # What QEMU's other workers would have in flight after a failure: up to
            # max-workers chunks, none when the speed limit starts each one.
            window = 1 if job.speed else self.max_workers
            results = await job.run_io(self.copier.copy_chunks, batch, window,
                                       BATCH_SECONDS)
            self._update_progress(job)
            cursor = results[-1][0] + 1
            for index, error in results:
                if error is not None and failure is None:
                    failure = error
                    stop = index + window
            await job.rate_limit(sum(self.chunks.weight(index) for index, _ in results))

    def _next_batch(self, cursor: int, stop: int | None, count: int) -> list[int]:
        """Up to ``count`` dirty chunks from ``cursor`` on, before ``stop``."""
        batch: list[int] = []
        while len(batch) < count:
            index = self.chunks.next_dirty(cursor, stop)
            if index is None:
                break
            batch.append(index)
            cursor = index + 1
        return batch

    async def _copy_before_write_only(self, job: Job) -> None:
        """sync=none: nothing to copy up front; the filter copies what gets written."""
        while True:
            self._update_progress(job)
            await job.sleep(PROGRESS_INTERVAL)

    def _update_progress(self, job: Job) -> None:
        job.progress_update(self.chunks.done_bytes - job.progress_current)

    # Section: completion

    def clean(self, job: Job) -> None:
        """Unblock the nodes and take the filter out; a drive-backup target closes."""
        if self._cleaned:
            return
        self._cleaned = True
        self._update_progress(job)  # what the filter copied since the last update
        self.release_claims()
        self.cbw.copier = None
        self.graph.remove_filter(self.cbw)

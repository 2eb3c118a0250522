"""The mirror job: copy a node to a target, keep the copy in sync, then switch to it.

Setting up (:func:`setup_mirror`) makes the checks of QEMU's blockdev_mirror_common,
mirror_start and mirror_start_job in their order, so a client gets
qemu-storage-daemon 7.2's error for the first thing wrong.  The graph then looks as
QEMU's does while a mirror runs:

* a ``mirror_top`` filter (named ``filter-node-name``, else generated) goes above the
  source and takes over the source's users; the job holds it as its "main node";
* the job writes the target through a backend of its own that needs write and lets
  others only write unchanged data (so the target is "in use" for blockdev-del);
* op blockers on the filter, the source and the target make other jobs and
  blockdev-del answer "Node 'x' is busy: block device is in use by block job: mirror";
* a :class:`~qjobd.block.dirty.DirtyBitmap` on the source (shown in
  query-named-block-nodes as QEMU shows its anonymous bitmap) records every write the
  source gets from then on.

The data path (:class:`MirrorDriver`): before the first pass the job marks dirty
what the source allocates (mirror_dirty_init): with ``sync=full`` anything its whole
backing chain allocates, with ``sync=top`` only what its top image does (the target
is to get the same backing file), with ``sync=none`` nothing.  A target that must
be zeroed first (``zero_target``: blockdev-mirror's and ``mode=existing``'s full
sync) is, when it can write zeroes by unmapping, and otherwise gets everything
copied.  Each iteration takes the next dirty run (up to ``buf-size``,
16 MiB by default), clears its bits and copies it in one worker-thread round trip
with :func:`qjobd.block.copy_chunk`, in 1 MiB requests like QEMU's (holes stay
holes); a failed request leaves its bytes dirty while the others go on, as QEMU's
requests in flight do, and the speed limit is applied per iteration, so a limited
mirror moves in bursts of ``buf-size`` as QEMU's does.  A write landing meanwhile
marks the bits again, so it is copied again.  When nothing is dirty the target is flushed and
the job is *ready* (BLOCK_JOB_READY); it then sleeps until a write marks the bitmap
(the writer's thread wakes it through the trio token) or a verb arrives, copying new
dirty data as it comes - the progress total grows by what was written, as in QEMU.

Ending, as QEMU's mirror_run / mirror_exit_common:

* ``job-complete`` (only when ready): copy what is still dirty, flush, and at
  finalization *pivot*: every user of the source (the ``mirror_top`` filter's users)
  now uses the target, the target takes the source's read-only flag, node names stay
  where they were; BLOCK_JOB_COMPLETED.
* ``block-job-cancel`` on a ready mirror: the same without the pivot (the target is a
  consistent copy), BLOCK_JOB_COMPLETED.
* ``job-cancel``, ``force``, or any cancel before ready: stop at once (whole chunks),
  no pivot, BLOCK_JOB_CANCELLED.

Either way the filter leaves the graph, the source gets its users back when there was
no pivot, and a target that ``drive-mirror`` opened is closed unless the pivot gave it
users.  Unless the job was aborted, drive-mirror's target (opened without a backing
file, as QEMU opens it) first gets its backing chain (``backing_mode``): the
source's backing file (``sync=top``) or the source itself (``sync=none``) in
``absolute-paths`` mode, the file its header names in ``existing`` mode.

I/O errors follow ``on-source-error``/``on-target-error``: ``report`` fails the job,
``stop`` pauses it (the run is retried on resume), ``ignore`` retries later,
``enospc`` stops on ENOSPC and reports anything else; each sends BLOCK_JOB_ERROR.

``copy-mode=write-blocking`` is accepted and runs like ``background``: in qjobd
nothing can write to a mirrored source while the job runs (the job's op blockers keep
other jobs away, and qjobd has no exports or guests), so there are no writes for it
to block on.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Final, Literal

import attrs
import trio

from qjobd.block import (
    PERM_ALL,
    PERM_NONE,
    BlockGraph,
    BlockNode,
    CopyError,
    EdgeKind,
    OpBlocker,
    Perm,
    Permission,
    chain,
    copy_chunk,
)
from qjobd.block.dirty import DirtyBitmap, granularity_valid
from qjobd.block.filter import FilterNode
from qjobd.block.node import Edge
from qjobd.errors import QMPError
from qjobd.jobdrivers.blockjob import BlockJobDriver, BlockJobOptions
from qjobd.jobs.job import Job, JobFailed

if TYPE_CHECKING:
    from qjobd.jobs.manager import JobManager

__all__ = [
    "DEFAULT_BUF_SIZE",
    "DEFAULT_GRANULARITY",
    "ActiveCommitDriver",
    "MirrorDriver",
    "MirrorOptions",
    "setup_mirror",
]

logger = logging.getLogger(__name__)

#: QEMU's requests in flight and their usual size; buf-size defaults to both.
MAX_IN_FLIGHT: Final = 16
MAX_IO_BYTES: Final = 1 << 20
DEFAULT_BUF_SIZE: Final = MAX_IN_FLIGHT * MAX_IO_BYTES
#: The most one iteration (one worker-thread round trip) copies, whatever buf-size
#: says, so that a cancel or a pause never waits long.
MAX_ITERATION: Final = 64 << 20
#: bdrv_get_default_bitmap_granularity for targets without a cluster size (raw, file).
DEFAULT_GRANULARITY: Final = 64 << 10
#: After an ignored error, wait this long before trying again: QEMU retries at once
#: and floods its clients with BLOCK_JOB_ERROR, which would get qjobd's dropped.
IGNORED_ERROR_DELAY: Final = 0.01

#: What the job's handle on the filter needs and shares (block_job_create in
#: mirror_start_job: no resize of the source while the job runs).
MAIN_NODE_PERMS: Final = (
    Perm.CONSISTENT_READ,
    Perm.CONSISTENT_READ | Perm.WRITE_UNCHANGED | Perm.WRITE,
)
#: The job's backend on the target: it writes, others may only write unchanged data.
TARGET_PERMS: Final = (Perm.WRITE, Perm.WRITE_UNCHANGED)
#: block_job_add_bdrv(..."source"...): no permission, nobody may resize the source.
SOURCE_JOB_PERMS: Final = (
    PERM_NONE,
    Perm.WRITE_UNCHANGED | Perm.WRITE | Perm.CONSISTENT_READ,
)

#: The reason QEMU's mirror_complete puts on the node it will replace.
REPLACE_BLOCKER_REASON: Final = "block device is in use by block-job-complete"

#: BlockMirrorBackingMode: what the target's backing file becomes when the job
#: ends well.  "source": the source's backing file (or the source, sync=none);
#: "open": the file the target's header names; "leave": nothing changes.
BackingMode = Literal["source", "open", "leave"]


@attrs.frozen
class MirrorOptions:
    """A mirror request after the command handler resolved its node names."""

    common: BlockJobOptions
    source: BlockNode
    target: BlockNode
    sync: str
    replaces: str | None = None
    granularity: int = 0
    buf_size: int = 0
    filter_node_name: str | None = None
    copy_mode: str = "background"
    #: drive-mirror opened the target for this job: close it when the job ends.
    implicit_target: bool = False
    #: drive-mirror's is "source" (absolute-paths) or "open" (existing).
    backing_mode: BackingMode = "leave"
    #: The target does not read as zeroes yet and must be zeroed (or fully copied).
    zero_target: bool = False
    #: Active commit (block-commit of the active layer): the target is this base
    #: of the source's chain, and only what lies above it is copied.
    commit_base: BlockNode | None = None


def default_granularity(target: BlockNode) -> int:
    """bdrv_get_default_bitmap_granularity: the target's cluster size, at least
    4 KiB; 64 KiB when it has none (raw, file)."""
    info = target.get_info()
    if info is not None and info[0]:
        return max(4096, info[0])
    return DEFAULT_GRANULARITY


def can_replace(source: BlockNode, to_replace: BlockNode) -> bool:
    """bdrv_recurse_can_replace: ``to_replace`` is ``source`` or a filter chain below it."""
    node: BlockNode | None = source
    while node is not None:
        if node is to_replace:
            return True
        node = node.filtered
    return False


def check_to_replace(graph: BlockGraph, source: BlockNode, name: str) -> BlockNode:
    """check_to_replace_node, with QEMU's texts in its order."""
    node = graph.find(name)
    if node is None:
        raise QMPError(f"Failed to find node with node-name='{name}'")
    graph.check_op(node, "replace")
    if not can_replace(source, node):
        raise QMPError(
            f"Cannot replace '{name}' by a node mirrored from '{source.node_name}', "
            "because it cannot be guaranteed that doing so would not lead to an abrupt "
            "change of visible data")
    return node


def _set_read_only(node: BlockNode, read_only: bool) -> None:
    """bdrv_reopen_set_read_only: the node and the children that inherit from it."""
    node.read_only = read_only
    for edge in node.child_edges:
        if not edge.node.monitor_owned:
            _set_read_only(edge.node, read_only)


def setup_mirror(graph: BlockGraph, jobs: JobManager, options: MirrorOptions) -> Job:
    """Check a mirror request, change the graph, create the job (not started).

    The checks follow blockdev_mirror_common, mirror_start and mirror_start_job; a
    failure after the job was created dismisses it (``created`` then ``null``, as QSD
    shows) and undoes every graph change.  Raises QMPError.
    """
    source, target = options.source, options.target
    granularity = options.granularity
    if granularity and not 512 <= granularity <= 64 << 20:
        raise QMPError("Parameter 'granularity' expects a value in range [512B, 64MB]")
    if granularity & (granularity - 1):
        raise QMPError("Parameter 'granularity' expects a power of 2")
    if options.commit_base is None:
        # block-commit made its own checks (commit-source, commit-target).
        graph.check_op(source, "mirror-source")
        graph.check_op(target, "mirror-target")
    sync = options.sync
    if sync == "top" and chain.backing_chain_next(source) is None:
        sync = "full"  # nothing below the top: the top is everything
    if options.replaces is not None:
        to_replace = check_to_replace(graph, source, options.replaces)
        if to_replace.length() != source.length():
            raise QMPError("cannot replace image with a mirror image of different size")
    if sync in ("incremental", "bitmap"):
        raise QMPError(f"Sync mode '{sync}' not supported")
    if options.buf_size < 0:
        raise QMPError("Invalid parameter 'buf-size'")
    if chain.skip_filters(source) is chain.skip_filters(target):
        raise QMPError("Can't mirror node into itself")
    granularity = granularity or default_granularity(target)
    assert granularity_valid(granularity)
    buf_size = -(-(options.buf_size or DEFAULT_BUF_SIZE) // granularity) * granularity

    driver_class = MirrorDriver if options.commit_base is None else ActiveCommitDriver
    driver = driver_class(graph, options, sync=sync, granularity=granularity,
                          buf_size=buf_size)
    job: Job | None = None
    try:
        if options.commit_base is not None:
            # commit_active_start: the base is written, so it is made writable.
            driver.reopen_writable(target)
        driver.insert_filter()
        job = driver.create_job(jobs)
        driver.attach(job)
    except BaseException:
        driver.undo_setup()
        if job is not None:
            jobs.discard_created(job)
        raise
    return job


class MirrorDriver(BlockJobDriver):
    """See the module docstring."""

    job_type = "mirror"
    defer_exit = True

    def __init__(self, graph: BlockGraph, options: MirrorOptions, *, sync: str,
                 granularity: int, buf_size: int) -> None:
        super().__init__(graph, options.common)
        self.options = options
        self.source = options.source
        self.target = options.target
        self.sync = sync
        self.granularity = granularity
        self.buf_size = buf_size
        #: One iteration (one worker-thread round trip, then the speed wait) takes at
        #: most this much dirty data: buf-size rounded up to whole granules, capped.
        self.iteration_size = min(-(-buf_size // granularity) * granularity,
                                  max(MAX_ITERATION, granularity))
        #: Each iteration copies in requests of this size (QEMU's max_io_bytes).
        self.op_size = max(buf_size // MAX_IN_FLIGHT, MAX_IO_BYTES)
        self.bitmap = DirtyBitmap(self.source.length(), granularity)
        #: What is not copied: the bottom of the chain the dirty bits come from
        #: (sync=top: the source's backing file; active commit: the base).
        self.base: BlockNode | None = options.commit_base
        if sync == "top":
            self.base = chain.backing_chain_next(self.source)
        #: Copies are widened to whole target clusters (mirror_cow_align) when the
        #: target names a backing file it has not opened yet: a partial write would
        #: fill the rest of its cluster with zeroes instead of that file's data.
        self.cow_align = 0
        self.top: MirrorTopFilter | None = None
        self._top_edge: Edge | None = None
        self._target_perm: Permission | None = None
        self._replace_blocker: OpBlocker | None = None
        self.to_replace: BlockNode | None = None
        self.should_complete = False
        self._prepared = False
        self._cursor = 0
        self._idle = False
        self._job: Job | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    @property
    def starts_ready(self) -> bool:
        """Nothing to copy up front: QEMU is ready before the command answers."""
        return self.sync == "none" or self.bitmap.length == 0

    # Section: setup

    def insert_filter(self) -> None:
        """bdrv_new_open_driver + bdrv_append: the filter above the source."""
        factory = CommitTopFilter if self.options.commit_base is not None else MirrorTopFilter
        top = self.graph.insert_filter(
            "mirror_top", self.source, node_name=self.options.filter_node_name,
            factory=factory)
        top.read_only = False  # opened read-write whatever the source is (BDRV_O_RDWR)
        assert isinstance(top, MirrorTopFilter)
        self.top = top
        self._top_edge = top.child_edges[0]

    def attach(self, job: Job) -> None:
        """The rest of mirror_start_job once the job exists; QMPError undoes nothing
        itself (the caller calls :meth:`undo_setup`)."""
        assert self.top is not None
        self._job = job
        self.claim(self.top, "main node", *MAIN_NODE_PERMS)
        self.block(self.top)
        target_perm, target_shared = TARGET_PERMS
        commit_base = self.options.commit_base
        if commit_base is None and chain.contains(self.source, chain.skip_filters(self.target)):
            raise QMPError("Cannot mirror to a filter on top of a node in the source's "
                           "backing chain")
        if commit_base is not None:
            # The target is in the source's chain: the images above it keep reading
            # it, and it keeps being written.
            target_shared |= Perm.CONSISTENT_READ | Perm.WRITE
        self._target_perm = self.graph.acquire(
            self.target, "an unnamed block device", True, perm=target_perm,
            shared=target_shared, kind=EdgeKind.BACKEND)
        self.claim(self.source, "source", *SOURCE_JOB_PERMS)
        self.block(self.source)
        self.claim(self.target, "target")
        self.block(self.target)
        if commit_base is not None:
            for node in chain.below(self.source, commit_base):
                self.claim(node, "intermediate node", PERM_NONE,
                           Perm.WRITE_UNCHANGED | Perm.WRITE)
                self.block(node)
        self.source.add_dirty_bitmap(self.bitmap)
        self.bitmap.add_listener(self._on_write)

    def undo_setup(self) -> None:
        """Take back everything setup did (a failed start)."""
        self._release_job_refs()
        if self.top is not None:
            self.graph.remove_filter(self.top)
            self.top = None
        self.restore_read_only()

    def _release_job_refs(self) -> None:
        self.source.remove_dirty_bitmap(self.bitmap)
        self.bitmap.remove_listener(self._on_write)
        if self._target_perm is not None:
            self._target_perm.release()
        self.release_claims()
        if self._replace_blocker is not None:
            self._replace_blocker.release()
            self._replace_blocker = None

    # Section: wake-ups

    def _on_write(self) -> None:
        """A write marked the bitmap (any thread): wake the job if it idles."""
        token = self._token
        if token is not None:
            try:
                token.run_sync_soon(self._wake)
            except trio.RunFinishedError:
                pass

    def _wake(self) -> None:
        if self._idle and self._job is not None:
            self._job.kick()

    # Section: the job

    async def run(self, job: Job) -> None:
        self._token = trio.lowlevel.current_trio_token()
        length = self.source.length()
        self._check_sizes(length)
        if length == 0:
            # Nothing to copy is a total known at once: without this the job would
            # report progress-valid false until it ends.
            job.progress_set_remaining(0)
            job.transition_to_ready()
            while not (self.should_complete or job.cancel_requested):
                await self._idle_wait(job)
            return
        self._setup_cow_align()
        if self.sync != "none":
            await self._dirty_init(job, length)
        while True:
            await job.pause_point()
            dirty = self.bitmap.count()
            job.progress_set_remaining(dirty)
            if dirty:
                await self._copy_next(job)
                continue
            if not job.is_ready:
                if not await self._flush(job):
                    continue
                job.transition_to_ready()
            if self.should_complete or job.cancel_requested:
                # The flush may have let writes in: finish only when still clean.
                if await self._flush(job) and not self.bitmap.count():
                    return
                continue
            await self._idle_wait(job)

    def _check_sizes(self, length: int) -> None:
        if length != self.target.length():
            raise JobFailed("Source and target image have different sizes")

    def _setup_cow_align(self) -> None:
        """What mirror_run decides before the first pass about copy-on-write."""
        target = chain.skip_filters(self.target)
        info = target.get_info()
        cluster = info[0] if info is not None and info[0] else 512
        if target.names_backing and target.backing is None and self.granularity < cluster:
            self.cow_align = cluster

    async def _dirty_init(self, job: Job, length: int) -> None:
        """mirror_dirty_init: zero the target if it must be, then mark what the
        source allocates above the base."""
        if self.options.zero_target:
            if not self.target.can_write_zeroes_with_unmap():
                self.bitmap.set(0, length)
                return
            await job.run_io(self.target.write_zeroes, 0, length)
        ranges = await job.run_io(chain.allocated_ranges, self.source, self.base, length)
        for offset, count in ranges:
            self.bitmap.set(offset, count)

    async def _idle_wait(self, job: Job) -> None:
        self._idle = True
        try:
            await job.yield_until_kicked()
        finally:
            self._idle = False

    async def _copy_next(self, job: Job) -> None:
        """One iteration (mirror_iteration): the next dirty run, then the speed wait."""
        run = self.bitmap.take(self._cursor, self.iteration_size)
        if run is None:
            return
        offset, length = run
        if self.cow_align:
            offset, length = self._cow_aligned(offset, length)
        self._cursor = offset + length
        done, failures = await job.run_io(self._copy_run, offset, length)
        job.progress_update(done)
        for op_offset, op_length, _ in failures:
            self.bitmap.set(op_offset, op_length)
        if failures:
            await self._io_errors(job, [(error.operation, error) for _, _, error in failures])
        await self._throttle(job, length)

    def _cow_aligned(self, offset: int, length: int) -> tuple[int, int]:
        """The run widened to whole target clusters, the widened part taken too."""
        align = self.cow_align
        start = offset // align * align
        end = min(-(-(offset + length) // align) * align, self.bitmap.length)
        self.bitmap.clear(start, end - start)
        return start, end - start

    @staticmethod
    async def _throttle(job: Job, nbytes: int) -> None:
        """The speed wait after an iteration: one sleep, which any verb (resume,
        set-speed...) cuts short for good, as QEMU's job_sleep_ns."""
        now = trio.current_time()
        job.limiter.processed(nbytes, now)
        await job.sleep(job.limiter.delay(now))

    def _copy_run(self, offset: int, length: int) -> tuple[int, list[tuple[int, int, CopyError]]]:
        """Copy a run op by op, going on past failures as QEMU's requests in flight
        do (worker thread).  Returns the bytes copied and the failed ops."""
        done = 0
        failures: list[tuple[int, int, CopyError]] = []
        end = offset + length
        for op_offset in range(offset, end, self.op_size):
            op_length = min(self.op_size, end - op_offset)
            try:
                # The target is flushed before the job is ready: start its writes.
                copy_chunk(self.source, self.target, op_offset, op_length,
                           write_behind=True)
            except CopyError as error:
                failures.append((op_offset, op_length, error))
            else:
                done += op_length
        return done, failures

    async def _flush(self, job: Job) -> bool:
        """Flush the target (inline when nothing was written); False after an error
        that did not end the job."""
        try:
            if self.target.needs_flush():
                await job.run_io(self.target.flush)
            else:
                self.target.flush()
        except OSError as error:
            await self._io_errors(job, [("write", error)])
            return False
        return True

    async def _io_errors(self, job: Job, errors: list[tuple[str, OSError]]) -> None:
        """Apply the error policies (mirror_error_action), one BLOCK_JOB_ERROR per
        failed request: the first 'report' fails the job, 'stop' pauses it, 'ignore'
        backs off a little before the data is tried again."""
        report: OSError | None = None
        actions = set()
        for operation, error in errors:
            action = self.on_io_error(job, operation, error.errno)
            actions.add(action)
            if action == "report" and report is None:
                report = error
        if report is not None:
            raise JobFailed(os.strerror(report.errno or errno.EIO)) from report
        if actions == {"ignore"}:
            await job.sleep(IGNORED_ERROR_DELAY)

    # Section: verbs

    def complete(self, job: Job) -> None:
        """mirror_complete: pivot once in sync; the block-job-complete checks."""
        if not job.is_ready:
            raise QMPError(f"The active block job '{job.id}' cannot be completed")
        replaces = self.options.replaces
        if replaces is not None and self._replace_blocker is None:
            node = self.graph.find(replaces)
            if node is None:
                raise QMPError(f"Node name '{replaces}' not found")
            self._replace_blocker = self.graph.block_ops(node, REPLACE_BLOCKER_REASON)
            self.to_replace = node
        self.should_complete = True
        if not job.paused:
            job.kick()

    def cancel(self, job: Job, force: bool) -> bool:
        """Before ready every cancel is a forced one (mirror_cancel)."""
        return force or not job.is_ready

    # Section: the end

    def prepare(self, job: Job) -> None:
        if not self._exit(job, abort=False):
            raise JobFailed(os.strerror(errno.EPERM))

    def abort(self, job: Job) -> None:
        self._exit(job, abort=True)

    def _exit(self, job: Job, abort: bool) -> bool:
        """mirror_exit_common: pivot (when completing), then leave the graph.

        Returns False when the pivot was refused; the graph is cleaned up anyway.
        """
        if self._prepared:
            return True
        self._prepared = True
        graph = self.graph
        ok = True
        source, target, top = self.source, self.target, self.top
        self._release_job_refs_before_pivot()
        if top is not None:
            # The job reads the source no more: the filter stops needing anything
            # of it, so it can become the target's backing file.
            top.stopped = True
            graph.refresh_perms(top)
        if not abort and not self._set_target_backing(job):
            ok = False
        new_home = source
        if self.should_complete and not abort:
            to_replace = self.to_replace or source
            if to_replace.read_only != target.read_only:
                _set_read_only(target, to_replace.read_only)
            if can_replace(source, to_replace):
                try:
                    graph.replace_node(to_replace, target,
                                       keep=self._top_edge if to_replace is source else None)
                    if to_replace is source:
                        new_home = target
                except QMPError as error:
                    logger.error("mirror %s: %s", job.id, error.desc)
                    ok = False
            else:
                logger.error(
                    "mirror %s: Can no longer replace '%s' by '%s', because it can no "
                    "longer be guaranteed that doing so would not lead to an abrupt "
                    "change of visible data", job.id, to_replace.node_name,
                    target.node_name)
                ok = False
        self._release_job_refs()
        if top is not None:
            try:
                graph.replace_node(top, new_home)
            except QMPError as error:
                logger.error("mirror %s: %s", job.id, error.desc)
                ok = False
            graph.remove_filter(top)
            self.top = None
        if self.options.implicit_target:
            graph.release_implicit(target)
        if new_home is target:
            self.keep_writable(target)  # an active commit's base is the active image now
        self.restore_read_only()
        return ok

    def _set_target_backing(self, job: Job) -> bool:
        """The target's backing chain per ``backing_mode`` (mirror_exit_common);
        False when that failed (the job then fails, the rest still happens)."""
        target = chain.skip_filters(self.target)
        try:
            if self.options.backing_mode == "source":
                backing = self.source if self.sync == "none" else self.base
                if target.backing is not backing:
                    self.graph.set_backing(target, backing)
            elif self.options.backing_mode == "open":
                self.graph.open_backing_file(target)
        except QMPError as error:
            logger.error("mirror %s: %s", job.id, error.desc)
            return False
        return True

    def _release_job_refs_before_pivot(self) -> None:
        """What QEMU drops before the pivot: the bitmap and the target backend."""
        self.source.remove_dirty_bitmap(self.bitmap)
        self.bitmap.remove_listener(self._on_write)
        if self._target_perm is not None:
            self._target_perm.release()
            self._target_perm = None


class ActiveCommitDriver(MirrorDriver):
    """block-commit of the active layer (commit_active_start): a mirror from the top
    image into a base of its own chain, of only what lies above the base.

    Completing pivots the top image's users to the base, as a mirror pivots; a
    cancel once ready leaves the top image in place, its base now holding a copy.
    """

    job_type = "commit"

    def _check_sizes(self, length: int) -> None:
        """mirror_run with a base: a larger base keeps its size, a smaller one grows
        (a metadata change, made here on the event loop)."""
        if self.target.length() < length:
            self.target.grow(length)


class MirrorTopFilter(FilterNode):
    """The ``mirror_top`` filter (bdrv_mirror_top_child_perm): it passes its users'
    needs through, until the job ends and it is ``stopped``: then it needs nothing
    and shares everything, as QEMU's does once the job stops reading the source."""

    def __init__(self, format_name: str) -> None:
        super().__init__(format_name)
        self.stopped = False

    def child_perm(self, edge: Edge, perm: Perm, shared: Perm) -> tuple[Perm, Perm]:
        if self.stopped:
            return PERM_NONE, PERM_ALL
        return super().child_perm(edge, perm, shared)


class CommitTopFilter(MirrorTopFilter):
    """The ``mirror_top`` filter of an active commit (bdrv_mirror_top_child_perm
    with is_commit): it must not need consistent reads of the top image, which
    the images above the base do not share during the job, and it lets writes
    through so the base, below the top, can be written."""

    def child_perm(self, edge: Edge, perm: Perm, shared: Perm) -> tuple[Perm, Perm]:
        nperm, nshared = super().child_perm(edge, perm, shared)
        if self.stopped:
            return nperm, nshared
        return nperm & ~Perm.CONSISTENT_READ, nshared | Perm.WRITE

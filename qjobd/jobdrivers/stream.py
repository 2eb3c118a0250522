"""block-stream: copy a backing chain's data into the top image, then drop the chain.

QEMU's stream job (block/stream.c) puts a ``copy-on-read`` filter above the top
node, walks the image in chunks, and for each chunk that the top image does not
allocate but an image above the base does, reads it and writes it into the top
image.  When it is done the top image's backing file becomes the base (or none),
in the graph and in the image header.  What the guest sees never changes: every
copied byte is what it read through the chain before.

Chunks that only zero clusters hold become zero writes in the top image, so it
stays sparse.  Progress counts every byte walked, copied or not, and the speed
limit counts only copied bytes, as in QEMU.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Final

import attrs

from qjobd.block import PERM_ALL, PERM_NONE, BlockGraph, BlockNode, Perm, chain
from qjobd.block.copy import CopyError
from qjobd.block.filter import FilterNode
from qjobd.errors import QMPError
from qjobd.jobdrivers.blockjob import BlockJobDriver, BlockJobOptions
from qjobd.jobs.job import Job, JobFailed

if TYPE_CHECKING:
    from qjobd.jobs.manager import JobManager

__all__ = ["StreamDriver", "StreamOptions", "setup_stream"]

logger = logging.getLogger(__name__)

#: QEMU's STREAM_CHUNK: what one step looks at.
CHUNK: Final = 512 << 10
#: What the top image lets the job share: reads and unchanged writes (and writes
#: for the active node, which the guest may still write).
BASIC_SHARED: Final = Perm.CONSISTENT_READ | Perm.WRITE_UNCHANGED


@attrs.frozen
class StreamOptions:
    """What block-stream asked for, resolved to nodes by the handler."""

    common: BlockJobOptions
    top: BlockNode
    #: The image that backs the top one afterwards (None: the whole chain goes).
    base: BlockNode | None
    backing_file: str | None = None
    filter_node_name: str | None = None


def setup_stream(graph: BlockGraph, jobs: JobManager, options: StreamOptions) -> Job:
    """stream_start: the filter, the job, the claims (not started).  Raises QMPError;
    a failure after the job exists dismisses it and undoes the graph changes."""
    top = options.top
    driver = StreamDriver(graph, options)
    if top.read_only:
        # Made writable for the job and read-only again afterwards, as QEMU does.
        top.reopen(False)
        driver.reopened = True
    driver.insert_filter()
    job: Job | None = None
    try:
        job = driver.create_job(jobs)
        driver.attach()
    except BaseException:
        driver.undo_setup()
        if job is not None:
            jobs.discard_created(job)
        raise
    return job


class StreamDriver(BlockJobDriver):
    """See the module docstring."""

    job_type = "stream"

    def __init__(self, graph: BlockGraph, options: StreamOptions) -> None:
        super().__init__(graph, options.common)
        self.options = options
        self.top = options.top
        self.base = options.base
        self.filter: FilterNode | None = None
        #: The top node was read-only and is made so again at the end.
        self.reopened = False
        self._cleaned = False

    # Section: setup

    def insert_filter(self) -> None:
        self.filter = self.graph.insert_filter(
            "copy-on-read", self.top, node_name=self.options.filter_node_name)
        self.filter.read_only = False

    def attach(self) -> None:
        """block_job_create on the filter, then the active and intermediate nodes."""
        assert self.filter is not None
        self.claim(self.filter, "main node", PERM_NONE, PERM_ALL)
        self.block(self.filter)
        self.claim(self.top, "active node", PERM_NONE, BASIC_SHARED | Perm.WRITE)
        self.block(self.top)
        for node in chain.below(self.top, self.base):
            self.claim(node, "intermediate node", PERM_NONE, BASIC_SHARED)
            self.block(node)

    def undo_setup(self) -> None:
        self.release_claims()
        if self.filter is not None:
            self.graph.remove_filter(self.filter)
            self.filter = None
        self._restore_read_only()

    def _restore_read_only(self) -> None:
        if self.reopened:
            self.reopened = False
            try:
                self.top.reopen(True)
            except (QMPError, OSError) as error:
                logger.warning("stream: node %s stays read-write: %s",
                               self.top.node_name, error)

    # Section: the job's work

    async def run(self, job: Job) -> None:
        length = self.top.length()
        job.progress_set_remaining(length)
        offset = 0
        while offset < length:
            await job.pause_point()
            try:
                count, copied = await job.run_io(self._step, offset,
                                                 min(CHUNK, length - offset))
            except CopyError as error:
                code = error.errno or errno.EIO
                action = self.on_io_error(job, error.operation, code)
                if action == "report":
                    raise JobFailed(os.strerror(code)) from error
                if action == "stop":
                    await job.pause_point()
                continue
            job.progress_update(count)
            offset += count
            if copied:
                await job.rate_limit(count)
        if self.top.needs_flush():
            await job.run_io(self.top.flush)

    def _step(self, offset: int, length: int) -> tuple[int, bool]:
        """One chunk (worker thread): (bytes covered, whether they were copied)."""
        top = self.top
        allocated, count = top.allocated_here(offset, length)
        if allocated:
            return count, False
        return chain.copy_allocated(top, top.backing, self.base, top, offset, count)

    # Section: the end

    def prepare(self, job: Job) -> None:
        """stream_prepare: the top image's backing becomes the base."""
        top, base = self.top, self.base
        # The intermediate images are about to leave the chain: let them go.
        self.release_claims()
        if top.backing is base:
            return
        name = fmt = None
        if base is not None:
            name = self.options.backing_file or base.filename
            fmt = base.format_name
        try:
            self.graph.set_backing(top, base)
            top.change_backing_file(name, fmt)
        except (QMPError, OSError) as error:
            raise JobFailed(os.strerror(errno.EPERM)) from error

    def clean(self, job: Job) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        self.release_claims()
        if self.filter is not None:
            self.graph.remove_filter(self.filter)
            self.filter = None
        self._restore_read_only()

"""block-stream: copy a backing chain's data into the top image, then drop the chain.

QEMU's stream job (block/stream.c) puts a ``copy-on-read`` filter above the top
node, walks the image in chunks, and for each chunk that the top image does not
allocate but an image above the base does, reads it and writes it into the top
image.  When it is done the top image's backing file becomes the base (or none),
in the graph and in the image header.  What the guest sees never changes: every
copied byte is what it read through the chain before.  The walk is
:class:`~qjobd.jobdrivers.chaincopy.ChainCopyDriver`'s.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Final

import attrs

from qjobd.block import PERM_ALL, PERM_NONE, BlockGraph, BlockNode, Perm, chain
from qjobd.errors import QMPError
from qjobd.jobdrivers.blockjob import BlockJobOptions
from qjobd.jobdrivers.chaincopy import ChainCopyDriver
from qjobd.jobs.job import Job, JobFailed

if TYPE_CHECKING:
    from qjobd.jobs.manager import JobManager

__all__ = ["StreamDriver", "StreamOptions", "setup_stream"]

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
    driver = StreamDriver(graph, options)
    job: Job | None = None
    try:
        # Made writable for the job and read-only again afterwards, as QEMU does.
        driver.reopen_writable(options.top)
        driver.insert_filter()
        job = driver.create_job(jobs)
        driver.attach()
    except BaseException:
        driver.undo_setup()
        if job is not None:
            jobs.discard_created(job)
        raise
    return job


class StreamDriver(ChainCopyDriver):
    """See the module docstring."""

    job_type = "stream"
    filter_format = "copy-on-read"
    filter_writable = True

    def __init__(self, graph: BlockGraph, options: StreamOptions) -> None:
        super().__init__(graph, options.common, options.top, options.filter_node_name)
        self.options = options
        self.base = options.base

    @property
    def written(self) -> BlockNode:
        return self.top

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

    def _step(self, offset: int, length: int) -> tuple[int, bool]:
        top = self.top
        allocated, count = top.allocated_here(offset, length)
        if allocated:
            return count, False
        return chain.copy_allocated(top, top.backing, self.base, top, offset, count)

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

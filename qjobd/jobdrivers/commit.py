"""block-commit of an intermediate image: its data (and that of the images between
it and the base) goes into the base, then those images leave the chain.

As QEMU's commit job (block/commit.c): a ``commit_top`` filter goes above the top
image, the job walks the image in chunks and copies every chunk that an image from
the top down to (not including) the base allocates, read through the top (so
what the guest sees is what lands in the base), written into the base.  At the
end the overlay of the top image names the base as its backing file, in the
graph and in its header, and the committed images are closed unless the monitor
owns them.  A read-only base is reopened read-write for the job and back after.
The walk is :class:`~qjobd.jobdrivers.chaincopy.ChainCopyDriver`'s.

The active layer (nothing above the top image) takes the mirror-like active commit
instead (:class:`qjobd.jobdrivers.mirror.ActiveCommitDriver`).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING

import attrs

from qjobd.block import PERM_ALL, PERM_NONE, BlockGraph, BlockNode, Perm, chain
from qjobd.errors import QMPError
from qjobd.jobdrivers.blockjob import BlockJobOptions
from qjobd.jobdrivers.chaincopy import ChainCopyDriver
from qjobd.jobs.job import Job, JobFailed

if TYPE_CHECKING:
    from qjobd.jobs.manager import JobManager

__all__ = ["CommitDriver", "CommitOptions", "setup_commit"]

logger = logging.getLogger(__name__)


@attrs.frozen
class CommitOptions:
    """What block-commit asked for, resolved to nodes by the handler."""

    common: BlockJobOptions
    #: The node the job is named after (the device's root).
    device: BlockNode
    top: BlockNode
    base: BlockNode
    #: The image whose backing file is ``top`` (it gets ``base`` instead).
    overlay: BlockNode
    backing_file: str | None = None
    filter_node_name: str | None = None


def setup_commit(graph: BlockGraph, jobs: JobManager, options: CommitOptions) -> Job:
    """commit_start: checks, the job, the base reopened, the filter and the claims
    (not started).  Raises QMPError; a failure after the job exists dismisses it
    and undoes the graph changes."""
    driver = CommitDriver(graph, options)
    job = driver.create_job(jobs)
    try:
        driver.reopen_writable(options.base)
        driver.insert_filter()
        driver.attach()
    except BaseException:
        driver.undo_setup()
        jobs.discard_created(job)
        raise
    return job


class CommitDriver(ChainCopyDriver):
    """See the module docstring."""

    job_type = "commit"
    filter_format = "commit_top"

    def __init__(self, graph: BlockGraph, options: CommitOptions) -> None:
        super().__init__(graph, options.common, options.top, options.filter_node_name)
        self.options = options
        self.base = options.base

    @property
    def written(self) -> BlockNode:
        return self.base

    def attach(self) -> None:
        """block_job_create on the device, the intermediate nodes, the base."""
        self.claim(self.options.device, "main node", PERM_NONE, PERM_ALL)
        self.block(self.options.device)
        shared = Perm.WRITE_UNCHANGED | Perm.WRITE
        for node in (self.top, *chain.below(self.top, self.base)):
            if node is self.options.device:
                continue
            self.claim(node, "intermediate node", PERM_NONE, shared)
            self.block(node)
        self.claim(self.base, "base", PERM_NONE, PERM_ALL)
        self.block(self.base)
        self.claim(self.base, "root", Perm.CONSISTENT_READ | Perm.WRITE,
                   Perm.CONSISTENT_READ | Perm.WRITE_UNCHANGED)

    async def run(self, job: Job) -> None:
        """commit_run: a base smaller than the top grows first (its new end reads
        as zeroes), then the chain's data is copied."""
        length = self.top.length()
        if self.base.length() < length:
            await job.run_io(self.base.grow, length)
        await super().run(job)

    def _step(self, offset: int, length: int) -> tuple[int, bool]:
        return chain.copy_allocated(self.top, self.top, self.base, self.base, offset,
                                    length)

    def prepare(self, job: Job) -> None:
        """bdrv_drop_intermediate: the overlay's backing becomes the base."""
        overlay, base = self.options.overlay, self.base
        self.release_claims()
        name = self.options.backing_file or base.filename
        try:
            self.graph.set_backing(overlay, base)
            self.filter = None  # closed with the images it sat above
            # A read-only overlay is made writable just for the header, as QEMU's
            # bdrv_child_cb_update_filename does.
            reopen = overlay.read_only
            if reopen:
                overlay.reopen(False)
            try:
                overlay.change_backing_file(name, base.format_name)
            finally:
                if reopen:
                    overlay.reopen(True)
        except (QMPError, OSError) as error:
            logger.error("commit %s: could not update the backing file link: %s", job.id,
                         error)
            raise JobFailed(os.strerror(errno.EPERM)) from error

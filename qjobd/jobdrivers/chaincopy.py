"""What block-stream and block-commit share: a filter above the top image, and a walk
over the image that copies what the backing chain allocates.

Both jobs (block/stream.c, block/commit.c) walk the top image in 512 KiB steps,
copy a step when some image of the chain allocates it, report I/O errors with one
policy for both directions, count every byte walked as progress and only copied
bytes against the speed limit, then flush the image they wrote.  qjobd makes the
steps of a few milliseconds in one worker-thread round trip (one step under a
speed limit), so a pause, a cancel or an error takes effect between steps as in
QEMU while the thread hand-offs do not dominate a fast copy.  Subclasses say
which filter they insert, what one step copies (:meth:`ChainCopyDriver._step`) and
which node they write (:attr:`ChainCopyDriver.written`).
"""

from __future__ import annotations

import errno
import os
import time
from typing import ClassVar, Final

from qjobd.block import BlockGraph, BlockNode
from qjobd.block.copy import CopyError
from qjobd.block.filter import FilterNode
from qjobd.jobdrivers.blockjob import BlockJobDriver, BlockJobOptions
from qjobd.jobs.job import Job, JobFailed

__all__ = ["CHUNK", "ChainCopyDriver"]

#: QEMU's STREAM_CHUNK and COMMIT_BUFFER_SIZE: what one step looks at.
CHUNK: Final = 512 << 10
#: Without a speed limit, one worker-thread round trip makes steps for up to this
#: long (and at most BATCH_STEPS of them); it bounds how late a pause or cancel
#: takes effect, as the backup job's batches do.
BATCH_SECONDS: Final = 0.005
BATCH_STEPS: Final = 256


class ChainCopyDriver(BlockJobDriver):
    """The shared part of stream and commit; see the module docstring."""

    #: The format name of the filter put above the top image.
    filter_format: ClassVar[str]
    #: Whether the filter is opened read-write (stream's copy-on-read is).
    filter_writable: ClassVar[bool] = False

    def __init__(self, graph: BlockGraph, common: BlockJobOptions, top: BlockNode,
                 filter_node_name: str | None) -> None:
        super().__init__(graph, common)
        self.top = top
        self.filter_node_name = filter_node_name
        self.filter: FilterNode | None = None
        self._cleaned = False

    @property
    def written(self) -> BlockNode:
        """The node the job writes (flushed at the end)."""
        raise NotImplementedError

    # Section: setup

    def insert_filter(self) -> None:
        self.filter = self.graph.insert_filter(self.filter_format, self.top,
                                               node_name=self.filter_node_name)
        if self.filter_writable:
            self.filter.read_only = False

    def undo_setup(self) -> None:
        """Take back what setup did (a failed start)."""
        self.release_claims()
        if self.filter is not None:
            self.graph.remove_filter(self.filter)
            self.filter = None
        self.restore_read_only()

    # Section: the job's work

    async def run(self, job: Job) -> None:
        length = self.top.length()
        job.progress_set_remaining(length)
        offset = 0
        while offset < length:
            await job.pause_point()
            # Under a speed limit one step at a time, each waited for as QEMU does.
            limit = 1 if job.speed else BATCH_STEPS
            count, copied, error = await job.run_io(self._steps, offset, length, limit)
            job.progress_update(count)
            offset += count
            if error is not None:
                code = error.errno or errno.EIO
                action = self.on_io_error(job, error.operation, code)
                if action == "report":
                    raise JobFailed(os.strerror(code)) from error
                if action == "stop":
                    await job.pause_point()
                continue
            if copied:
                await job.rate_limit(copied)
        written = self.written
        if written.needs_flush():
            await job.run_io(written.flush)

    def _steps(self, offset: int, length: int, limit: int) -> tuple[int, int, CopyError | None]:
        """Steps from ``offset`` for about BATCH_SECONDS, at least one and at most
        ``limit`` (worker thread): (bytes covered, bytes copied, the error that
        stopped them).  The failed step covers nothing, so it is tried again."""
        deadline = time.monotonic() + BATCH_SECONDS
        covered = copied = 0
        for _ in range(limit):
            position = offset + covered
            if position >= length:
                break
            try:
                count, did = self._step(position, min(CHUNK, length - position))
            except CopyError as error:
                return covered, copied, error
            covered += count
            if did:
                copied += count
            if time.monotonic() >= deadline:
                break
        return covered, copied, None

    def _step(self, offset: int, length: int) -> tuple[int, bool]:
        """One step (worker thread): (bytes covered, whether they were copied)."""
        raise NotImplementedError

    # Section: the end

    def clean(self, job: Job) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        self.release_claims()
        if self.filter is not None and not self.filter.closed:
            self.graph.remove_filter(self.filter)
        self.filter = None
        self.restore_read_only()

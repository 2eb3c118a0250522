"""The ``create`` job of blockdev-create: one image, created in a worker thread.

Not a block job: no BLOCK_JOB_* events, invisible to the block-job-* commands.  Its
progress goes from 0/1 to 1/1 whatever the outcome, and it is never dismissed
automatically (the client reads the result, then calls job-dismiss), as in QEMU.

What QEMU does before its first yield happens synchronously here too, so that a
creation failing that early (a missing directory) concludes before the command's
reply, exactly as qemu-storage-daemon answers; the rest runs in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from qjobd.block import create_file
from qjobd.block.file import open_error
from qjobd.errors import QMPError
from qjobd.jobs.job import Job, JobDriver

__all__ = ["CreateDriver", "FileCreation"]

_UINT32_MAX = 0xFFFFFFFF


class FileCreation:
    """blockdev-create with the ``file`` driver (BlockdevCreateOptionsFile)."""

    def __init__(self, options: Any) -> None:
        self.filename: str = options.filename
        self.size: int = options.size
        self.preallocation: str = (
            options.preallocation.value if options.preallocation is not None else "off"
        )
        self.nocow = bool(options.nocow)
        self.extent_size_hint: int | None = options.extent_size_hint

    def check(self) -> None:
        """The steps QEMU takes before it yields: options, then creating the file."""
        if self.extent_size_hint is not None and self.extent_size_hint > _UINT32_MAX:
            raise QMPError("Extent size hint is too large")
        try:
            fd = os.open(self.filename, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise open_error(self.filename, error, "create") from error
        os.close(fd)

    def create(self) -> None:
        """The rest (blocking): truncate, grow, preallocate."""
        try:
            create_file(self.filename, self.size, self.preallocation, self.nocow,
                        self.extent_size_hint)
        except OverflowError as error:
            # A size past off_t's range is negative to QEMU's ftruncate.
            raise QMPError("Could not resize file: Invalid argument") from error


class CreateDriver(JobDriver):
    """Runs ``check`` on the event loop, then ``create`` in a worker thread."""

    job_type = "create"
    is_block_job = False

    def __init__(self, check: Callable[[], None], create: Callable[[], None]) -> None:
        self._check = check
        self._create = create

    async def run(self, job: Job) -> None:
        job.progress_set_remaining(1)
        try:
            self._check()
            await job.run_io(self._create)
        finally:
            job.progress_update(1)

"""The ``create`` job of blockdev-create: one image, created in a worker thread.

Not a block job: no BLOCK_JOB_* events, invisible to the block-job-* commands.  Its
progress goes from 0/1 to 1/1 whatever the outcome, and it is never dismissed
automatically (the client reads the result, then calls job-dismiss), as in QEMU.

What QEMU does before its first yield happens synchronously here too, so that a
creation failing that early (a missing directory) concludes before the command's
reply, exactly as qemu-storage-daemon answers; the rest runs in a worker thread.
What is created comes from the format registry
(:meth:`qjobd.block.formats.FormatRegistry.blockdev_creation`).
"""

from __future__ import annotations

from qjobd.block.formats import ImageCreation
from qjobd.jobs.job import Job, JobDriver

__all__ = ["CreateDriver"]


class CreateDriver(JobDriver):
    """Runs the creation's ``check`` on the event loop, then ``create`` in a thread."""

    job_type = "create"
    is_block_job = False
    progress_unit = "steps"

    def __init__(self, creation: ImageCreation) -> None:
        self._creation = creation

    async def run(self, job: Job) -> None:
        job.progress_set_remaining(1)
        try:
            self._creation.check()
            await job.run_io(self._creation.create)
        finally:
            self._creation.close()
            job.progress_update(1)

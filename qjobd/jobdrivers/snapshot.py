"""The snapshot-save, snapshot-load and snapshot-delete jobs (QEMU's migration jobs).

Not block jobs: no BLOCK_JOB_* events.  Like ``create`` they go from 0/1 to 1/1 and
wait for job-dismiss.  QEMU runs their work in a bottom half of the main loop, so
the monitor waits for it; qjobd does the same on the event loop: the work is
metadata only (a header switch per image, see qjobd.block.qcow2.shadow), and doing
it there means no command can change the graph halfway through.
"""

from __future__ import annotations

from collections.abc import Callable

from qjobd.jobs.job import Job, JobDriver

__all__ = ["SnapshotDeleteDriver", "SnapshotLoadDriver", "SnapshotSaveDriver"]


class _SnapshotDriver(JobDriver):
    """Runs one of qjobd.block.internal_snapshots' ``all_*`` operations."""

    is_block_job = False
    progress_unit = "steps"

    def __init__(self, work: Callable[[], None]) -> None:
        self._work = work

    async def run(self, job: Job) -> None:
        job.progress_set_remaining(1)
        try:
            self._work()
        finally:
            job.progress_update(1)


class SnapshotSaveDriver(_SnapshotDriver):
    job_type = "snapshot-save"


class SnapshotLoadDriver(_SnapshotDriver):
    job_type = "snapshot-load"


class SnapshotDeleteDriver(_SnapshotDriver):
    job_type = "snapshot-delete"

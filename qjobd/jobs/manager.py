"""The job manager: every job by id, the nursery they run in, and the verbs that
reach beyond one job (cancel, finalize, dismiss).

Jobs belong to the daemon, not to the client that started them: they run in the
manager's nursery, so a client may disconnect while its backup goes on.  The manager
is each job's :class:`~qjobd.jobs.job.JobOwner`: it hands a finished job to its
:class:`~qjobd.jobs.transaction.Transaction` and forgets a dismissed one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from qjobd.errors import QMPError
from qjobd.ids import id_wellformed
from qjobd.jobs.details import progress_event
from qjobd.jobs.events import EventSink
from qjobd.jobs.fsm import JobStatus, JobVerb
from qjobd.jobs.job import Job, JobDriver, JobOrigin
from qjobd.jobs.transaction import Transaction

if TYPE_CHECKING:
    import trio

__all__ = ["JobManager"]

logger = logging.getLogger(__name__)


class JobRecorder(Protocol):
    """Keeps a record of jobs (:class:`~qjobd.jobs.history.JobHistory`)."""

    def record(self, job: Job) -> None:
        """``job`` changed status: keep its detailed information as it is now."""


class JobManager:
    """Owns every job, in creation order, by id."""

    def __init__(self, events: EventSink) -> None:
        self.events = events
        self.jobs: dict[str, Job] = {}
        self._transactions: dict[Job, Transaction] = {}
        self._nursery: trio.Nursery | None = None
        #: Where every job's life is recorded, if anywhere.
        self.history: JobRecorder | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the manager the nursery its jobs will run in."""
        self._nursery = nursery

    def find(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def newest_first(self) -> list[Job]:
        """Every job, newest first: QEMU links each new job at the head of its list."""
        return list(reversed(self.jobs.values()))

    # Section: creating and starting

    def check_new_id(self, job_id: str) -> None:
        """QEMU's checks on a new job's id (the block layer checks come first)."""
        if not id_wellformed(job_id):
            raise QMPError(f"Invalid job ID '{job_id}'")
        if job_id in self.jobs:
            raise QMPError(f"Job ID '{job_id}' already in use")

    def create(
        self,
        job_id: str,
        driver: JobDriver,
        *,
        txn: Transaction | None = None,
        auto_finalize: bool = True,
        auto_dismiss: bool = True,
        speed: int = 0,
        origin: JobOrigin | None = None,
    ) -> Job:
        """Register a new job in ``created``; :meth:`start` sets it going.

        :raise QMPError: bad or duplicate id, negative speed (the job is then dismissed
            right after being created, as QEMU does).
        """
        self.check_new_id(job_id)
        job = Job(
            self, self.events, job_id, driver, auto_finalize=auto_finalize,
            auto_dismiss=auto_dismiss, speed=max(speed, 0), origin=origin,
        )
        self.jobs[job_id] = job
        txn = txn or Transaction()
        txn.add(job)
        self._transactions[job] = txn
        job.enter_created()
        if speed < 0:
            # QEMU creates the job before it checks the speed: created, then null.
            self.discard_created(job)
            raise QMPError("Parameter 'speed' expects a non-negative value")
        return job

    def start(self, job: Job) -> None:
        assert self._nursery is not None, "job manager is not serving"
        job.mark_started()
        self._nursery.start_soon(job.main, name=f"job {job.id}")

    def discard_created(self, job: Job) -> None:
        """Drop a job that was created but never started (a failed setup)."""
        assert job.status == JobStatus.CREATED
        job.dismiss()

    # Section: JobOwner

    def job_changed(self, job: Job) -> None:
        if self.history is not None:
            self.history.record(job)
        if job.status == JobStatus.CONCLUDED:
            # The last JOB_PROGRESS, for the clients that asked for them (the bus
            # sends it to those only); the earlier ones come from each client's feed.
            self.events.emit("JOB_PROGRESS", progress_event(job))

    def job_finished(self, job: Job) -> None:
        self._transactions[job].job_completed(job)

    def job_dismissed(self, job: Job) -> None:
        txn = self._transactions.pop(job, None)
        if txn is not None:
            txn.remove(job)
        if self.jobs.get(job.id) is job:
            del self.jobs[job.id]

    # Section: verbs that involve the transaction

    def user_cancel(self, job: Job, *, force: bool) -> None:
        """job-cancel and block-job-cancel (QEMU's job_user_cancel)."""
        job.check_verb(JobVerb.CANCEL)
        self.cancel(job, force=force)

    def cancel(self, job: Job, *, force: bool) -> None:
        """QEMU's job_cancel: also used on the jobs of a transaction that failed."""
        if job.status == JobStatus.CONCLUDED:
            job.dismiss()
            return
        job.cancel_async(force)
        txn = self._transactions[job]
        if not job.started:
            # Never started (a transaction that failed to prepare): nothing runs.
            job.finish_unstarted()
            txn.job_completed(job)
        elif job.run_finished and job.is_force_cancelled:
            # Its work is over (waiting or pending): abort the transaction now.
            txn.abort(job)

    def user_finalize(self, job: Job) -> None:
        """job-finalize: finalize the whole transaction of a pending job."""
        job.check_verb(JobVerb.FINALIZE)
        self._transactions[job].finalize(job)

    def user_dismiss(self, job: Job) -> None:
        """job-dismiss: forget a concluded job."""
        job.check_verb(JobVerb.DISMISS)
        job.dismiss()

    def cancel_all(self) -> None:
        """Force-cancel every running job (daemon shutdown)."""
        for job in list(self.jobs.values()):
            if not job.is_completed and job.started:
                job.cancel_async(force=True)

"""The job manager: every job, the nursery they run in, and transaction completion.

Jobs belong to the daemon, not to the client that started them: they run in the
manager's nursery, so a client may disconnect while its backup goes on.

Completion follows QEMU's ``job.c``.  When a job's driver returns, the job either
failed (or was cancelled) and *aborts its whole transaction* — every other member is
force-cancelled, waited for, and finalized with it — or it succeeded and *waits*
until every member has succeeded, after which all move to ``pending`` and, unless
one of them wants manual finalization, are finalized: each job's ``prepare`` runs,
then ``commit`` (or ``abort`` when a prepare failed) and ``clean``, the BLOCK_JOB_*
event, ``concluded``, and ``null`` when auto-dismiss is on.  A job started on its own
gets a transaction of one.
"""

from __future__ import annotations

import logging
import string
from typing import TYPE_CHECKING, Any

from qjobd.errors import QMPError
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import Job, JobDriver, JobFailed

if TYPE_CHECKING:
    import trio

    from qjobd.server.events import EventBus

__all__ = ["JobManager", "Transaction", "id_wellformed"]

logger = logging.getLogger(__name__)

_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-._")


def id_wellformed(identifier: str) -> bool:
    """QEMU's rule for ids: a letter, then letters, digits, '-', '.', '_'."""
    return (
        bool(identifier)
        and identifier[0] in string.ascii_letters
        and all(char in _ID_CHARS for char in identifier)
    )


class Transaction:
    """Jobs that complete together (QEMU's JobTxn)."""

    def __init__(self) -> None:
        #: Newest first, as QEMU links them; abort and finalize walk this order.
        self.jobs: list[Job] = []
        self.aborting = False

    def add(self, job: Job) -> None:
        self.jobs.insert(0, job)
        job.txn = self

    def remove(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)


class JobManager:
    """Owns every job, in creation order, by id."""

    def __init__(self, events: EventBus) -> None:
        self.events = events
        self.jobs: dict[str, Job] = {}
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the manager the nursery its jobs will run in."""
        self._nursery = nursery

    def find(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

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
        request_id: Any = None,
    ) -> Job:
        """Register a new job in ``created``; :meth:`start` sets it going.

        :raise QMPError: bad or duplicate id, negative speed (the job is then dismissed
            right after being created, as QEMU does).
        """
        self.check_new_id(job_id)
        job = Job(
            self, job_id, driver, auto_finalize=auto_finalize, auto_dismiss=auto_dismiss,
            speed=max(speed, 0), request_id=request_id,
        )
        self.jobs[job_id] = job
        (txn or Transaction()).add(job)
        job.transition(JobStatus.CREATED)
        if speed < 0:
            # QEMU creates the job before it checks the speed: created, then null.
            self.discard_created(job)
            raise QMPError("Parameter 'speed' expects a non-negative value")
        return job

    def start(self, job: Job) -> None:
        assert self._nursery is not None, "job manager is not serving"
        assert not job.started
        job.started = True
        job.pause_count -= 1
        job.transition(JobStatus.RUNNING)
        self._nursery.start_soon(job.main, name=f"job {job.id}")

    def discard_created(self, job: Job) -> None:
        """Drop a job that was created but never started (a failed transaction)."""
        assert job.status == JobStatus.CREATED
        self._dismiss(job)

    # Section: completion (runs in the finishing job's task)

    def job_completed(self, job: Job) -> None:
        """The driver returned: fail the transaction or wait for its other members."""
        assert job.txn is not None
        assert not job.is_completed
        self._update_result(job)
        if job.failed:
            self._abort_transaction(job)
        else:
            self._transaction_success(job)

    def _update_result(self, job: Job) -> None:
        if not job.failed and job.is_cancelled:
            job.failed = True
            job.error = "Operation canceled"
        if job.failed:
            job.transition(JobStatus.ABORTING)

    def _transaction_success(self, job: Job) -> None:
        txn = job.txn
        assert txn is not None
        job.transition(JobStatus.WAITING)
        if not all(other.is_completed for other in txn.jobs):
            return
        for other in list(txn.jobs):
            other.transition(JobStatus.PENDING)
            if not other.auto_finalize and other.is_block_job:
                self.events.emit("BLOCK_JOB_PENDING", {"type": other.type, "id": other.id})
        if all(other.auto_finalize for other in txn.jobs):
            self._finalize_transaction(job)

    def _abort_transaction(self, job: Job) -> None:
        txn = job.txn
        assert txn is not None
        if txn.aborting:
            return  # another member is aborting us all
        txn.aborting = True
        for other in txn.jobs:
            if other is not job:
                other.cancel_async(force=True)
        self._finalize_aborted(txn)

    def _finalize_aborted(self, txn: Transaction) -> None:
        """Finalize the members newest first, as QEMU's job_completed_txn_abort does.

        A member still running (it was force-cancelled) is waited for before it and
        the members after it are finalized, so the ones already done conclude first.
        A member that was never started has nothing to wait for.
        """
        while txn.jobs:
            other = txn.jobs[0]
            if not other.is_completed:
                if other.started:
                    assert self._nursery is not None
                    self._nursery.start_soon(
                        self._finalize_aborted_after, other, txn, name="transaction abort"
                    )
                    return
                other.deferred = True
                self._update_result(other)
            self._finalize_single(other)

    async def _finalize_aborted_after(self, job: Job, txn: Transaction) -> None:
        await job.wait_work_done()
        self._finalize_aborted(txn)

    def _finalize_transaction(self, job: Job) -> None:
        txn = job.txn
        assert txn is not None
        for other in list(txn.jobs):
            if other.failed:
                continue
            try:
                other.driver.prepare(other)
            except JobFailed as error:
                other.failed = True
                other.error = error.message
                self._update_result(other)
        if any(other.failed for other in txn.jobs):
            self._abort_transaction(job)
            return
        for other in list(txn.jobs):
            self._finalize_single(other)

    def _finalize_single(self, job: Job) -> None:
        """Commit or abort one job, announce the outcome, conclude it."""
        assert job.is_completed
        self._update_result(job)
        try:
            if job.failed:
                job.driver.abort(job)
            else:
                job.driver.commit(job)
        except Exception:
            logger.exception("job %s: %s failed", job.id, "abort" if job.failed else "commit")
        try:
            job.driver.clean(job)
        except Exception:
            logger.exception("job %s: clean failed", job.id)
        if job.started and job.is_block_job:
            if job.is_cancelled:
                self.events.emit("BLOCK_JOB_CANCELLED", job.block_event_data())
            else:
                data = job.block_event_data()
                if job.failed and job.error is not None:
                    data["error"] = job.error
                self.events.emit("BLOCK_JOB_COMPLETED", data)
        if job.txn is not None:
            job.txn.remove(job)
        job.transition(JobStatus.CONCLUDED)
        if job.auto_dismiss or not job.started:
            self._dismiss(job)

    # Section: verbs needing the manager

    def cancel(self, job: Job, force: bool) -> None:
        """QEMU's job_cancel: the caller checked the verb."""
        if job.status == JobStatus.CONCLUDED:
            self._dismiss(job)
            return
        job.cancel_async(force)
        if not job.started:
            # Never started (a transaction that failed to prepare): nothing runs.
            job.deferred = True
            self.job_completed(job)
        elif job.deferred and job.is_cancelled:
            # Its work is over (waiting or pending): abort the transaction now.
            self._abort_transaction(job)

    def finalize(self, job: Job) -> None:
        self._finalize_transaction(job)

    def dismiss(self, job: Job) -> None:
        self._dismiss(job)

    def _dismiss(self, job: Job) -> None:
        if job.txn is not None:
            job.txn.remove(job)
        job.busy = False
        job.paused = False
        job.deferred = True
        job.transition(JobStatus.NULL)
        self.jobs.pop(job.id, None)

    def cancel_all(self) -> None:
        """Force-cancel every running job (daemon shutdown)."""
        for job in list(self.jobs.values()):
            if not job.is_completed and job.started:
                job.cancel_async(force=True)

"""Jobs that complete together (QEMU's JobTxn), and the completion sequence of job.c.

When a job's driver returns, the job either failed (or was force-cancelled) and
*aborts its whole transaction* — every other member is force-cancelled and, once its
run is over, finalized with it, newest first — or it succeeded and *waits* until
every member has succeeded.  Then all move to ``pending`` and, unless one of them
wants manual finalization, are finalized: each job's ``prepare`` runs, then
``commit`` (or ``abort`` when a prepare failed) and ``clean``, the BLOCK_JOB_*
event, ``concluded``, and ``null`` when auto-dismiss is on.  A job started on its own
gets a transaction of one.

Everything here runs on the event loop, called from a finishing job's task or from a
command handler, and changes jobs only through their methods.
"""

from __future__ import annotations

from qjobd.jobs.job import Job

__all__ = ["Transaction"]


class Transaction:
    """The members of one transaction, newest first as QEMU links them."""

    def __init__(self) -> None:
        #: Newest first; abort and finalize walk this order.
        self.jobs: list[Job] = []
        #: Set once a member failed: the others are being cancelled and finalized.
        self.aborting = False

    def add(self, job: Job) -> None:
        self.jobs.insert(0, job)

    def remove(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)

    def job_completed(self, job: Job) -> None:
        """``job``'s run is over (QEMU's job_completed)."""
        assert not job.is_completed
        job.settle_result()
        if self.aborting:
            self._finalize_aborted()  # it was cancelled by another member's failure
        elif job.failed:
            self.abort(job)
        else:
            self._member_succeeded(job)

    def _member_succeeded(self, job: Job) -> None:
        job.enter_waiting()
        if not all(other.is_completed for other in self.jobs):
            return
        for other in list(self.jobs):
            other.enter_pending()
        if all(other.auto_finalize for other in self.jobs):
            self.finalize(job)

    def abort(self, failed: Job) -> None:
        """``failed`` failed: force-cancel every other member, finalize all of them."""
        if self.aborting:
            return
        self.aborting = True
        for other in self.jobs:
            if other is not failed:
                other.cancel_async(force=True)
        self._finalize_aborted()

    def _finalize_aborted(self) -> None:
        """Finalize the members newest first, as QEMU's job_completed_txn_abort does.

        A member still running (it was force-cancelled) stops the walk: when its run
        ends, :meth:`job_completed` resumes it, so members finish in QEMU's order.  A
        member that was never started has nothing to wait for.
        """
        while self.jobs:
            member = self.jobs[0]
            if not member.is_completed:
                if member.started:
                    return
                member.finish_unstarted()
                member.settle_result()
            self.jobs.pop(0)
            member.finalize()

    def finalize(self, trigger: Job) -> None:
        """Every member is pending: prepare each, then commit every one, or abort all.

        ``trigger`` is the member whose completion (or job-finalize) got here; as in
        QEMU's job_do_finalize it is the one an abort spares from force-cancelling.
        Preparing stops at the first member that fails to prepare.
        """
        if not all(member.prepare() for member in list(self.jobs)):
            self.abort(trigger)
            return
        for member in list(self.jobs):
            self.remove(member)
            member.finalize()

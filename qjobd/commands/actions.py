"""QEMU's transaction protocol: prepare every action, then commit all or abort all.

``transaction`` runs it for a list of actions; blockdev-backup, drive-backup,
blockdev-snapshot-sync and blockdev-snapshot are, as in QEMU, transactions of one
action.  It goes as qmp_transaction goes:

1. **Prepare** each action in order: its checks, its graph changes, its job
   created but not started.  A prepare that fails leaves nothing of its own behind
   (it undoes its partial work before raising).
2. If every prepare succeeded, **commit** each action in order: a job starts, a
   snapshot's frozen node becomes read-only.  Commits do not fail.
3. Otherwise **abort** the prepared actions newest first (a job is cancelled and
   goes aborting, concluded, null; a snapshot's graph change is undone) and reply
   with the error.  Aborts do not fail either.
4. Either way, **clean** each prepared action in order: release what prepare held
   only for the transaction's sake (a snapshot's new overlay that nothing uses).

An action says what steps 2 to 4 do for it by returning a :class:`Prepared`; an
action whose whole effect is one job may return the job itself (commit starts it,
abort cancels it), and one with nothing left to do returns None.  With ``grouped``
the jobs share one Transaction: they complete or fail together; actions that
cannot work that way call :func:`refuse_grouped` first.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from qjobd.commands.context import CommandContext
from qjobd.errors import QMPError
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import Job
from qjobd.jobs.manager import JobManager
from qjobd.jobs.transaction import Transaction

__all__ = ["Action", "Prepared", "perform", "refuse_grouped"]

#: A step of a prepared action; it must not raise.
Step = Callable[[], None]


@attrs.frozen
class Prepared:
    """What a prepared action still has to do, by outcome (QEMU's BlkActionOps
    commit, abort and clean)."""

    #: Makes the action take effect once every action is prepared.
    commit: Step | None = None
    #: Undoes the prepare when a later action fails.
    abort: Step | None = None
    #: Runs after ``commit`` or ``abort``, whichever ran.
    clean: Step | None = None
    #: The job the action created, if any: the command waits for it to settle
    #: (react to being started) before it replies.
    job: Job | None = None


#: Prepares one action in the transaction ``txn`` (None unless grouped) and says
#: what is left to do (see the module docstring), or raises QMPError.
Action = Callable[[Transaction | None], Prepared | Job | None]


def refuse_grouped(kind: str, txn: Transaction | None) -> None:
    """action_check_completion_mode: ``kind`` works only with ``individual``."""
    if txn is not None:
        raise QMPError(f"Action '{kind}' does not support Transaction property "
                       "completion-mode = grouped")


def _job_steps(manager: JobManager, job: Job) -> Prepared:
    """A job action: commit starts the job, abort cancels it (once)."""

    def abort() -> None:
        if job.status != JobStatus.NULL:
            manager.cancel(job, force=True)

    return Prepared(commit=lambda: manager.start(job), abort=abort, job=job)


def _steps(manager: JobManager, outcome: Prepared | Job | None) -> Prepared:
    if isinstance(outcome, Job):
        return _job_steps(manager, outcome)
    return outcome if outcome is not None else Prepared()


async def perform(context: CommandContext, actions: list[Action], *, grouped: bool) -> None:
    """Run ``actions`` as one transaction; see the module docstring."""
    manager = context.services.jobs
    txn = Transaction() if grouped else None
    prepared: list[Prepared] = []
    try:
        for action in actions:
            prepared.append(_steps(manager, action(txn)))
    except BaseException:
        for steps in reversed(prepared):
            if steps.abort is not None:
                steps.abort()
        _clean(prepared)
        raise
    for steps in prepared:
        if steps.commit is not None:
            steps.commit()
    _clean(prepared)
    for steps in prepared:
        if steps.job is not None:
            await steps.job.settle()


def _clean(prepared: list[Prepared]) -> None:
    for steps in prepared:
        if steps.clean is not None:
            steps.clean()

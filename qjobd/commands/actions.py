"""QEMU's transaction protocol: prepare every action, then start every job.

``transaction`` runs it for a list of actions; blockdev-backup and drive-backup are,
as in QEMU, transactions of one action.  Preparing an action makes its checks and
graph changes and creates its job without starting it; only when every action is
prepared do the jobs start.  When one fails to prepare, the jobs already created are
cancelled newest first (each goes aborting, concluded, null) and its error is the
reply.  With ``grouped`` the jobs share one Transaction: they complete or fail
together.
"""

from __future__ import annotations

from collections.abc import Callable

from qjobd.commands.context import CommandContext
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import Job
from qjobd.jobs.transaction import Transaction

__all__ = ["Action", "perform"]

#: Prepares one action: checks, graph changes, the job created in ``txn`` but not
#: started.  Returns the job (None for actions without one) or raises QMPError.
Action = Callable[[Transaction | None], Job | None]


async def perform(context: CommandContext, actions: list[Action], *, grouped: bool) -> None:
    """Prepare ``actions`` in order, then start their jobs; see the module docstring."""
    manager = context.services.jobs
    txn = Transaction() if grouped else None
    created: list[Job] = []
    try:
        for action in actions:
            job = action(txn)
            if job is not None:
                created.append(job)
    except BaseException:
        for job in reversed(created):
            if job.status != JobStatus.NULL:
                manager.cancel(job, force=True)
        raise
    for job in created:
        manager.start(job)
    for job in created:
        await job.settle()

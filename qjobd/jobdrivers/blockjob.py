"""What every block job shares: its common options, its claims on nodes, error policy.

QEMU's block jobs (``blockjob.c``) all do three things the same way, and so do
qjobd's drivers by deriving from :class:`BlockJobDriver`:

* **Options.**  Handlers build a :class:`BlockJobOptions` record (QEMU's defaults
  applied) and the driver's own options record; drivers never read the model's
  argument objects.
* **Claims.**  A running job holds its nodes (QEMU's block_job_add_bdrv): a job
  edge on each, so the node stays and shows the job as its user in permission
  conflicts, and an op blocker, so other jobs and ``blockdev-del`` answer "Node 'x'
  is busy: block device is in use by block job: <type>".  :meth:`claim` and
  :meth:`block` take them; :meth:`release_claims` gives them all back.
* **Error policy.**  ``on-source-error`` applies to reads, ``on-target-error`` to
  writes; :meth:`on_io_error` turns the policy and the errno into QEMU's action and
  reports it (BLOCK_JOB_ERROR, and a pause for ``stop``).
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING

import attrs

from qjobd.block import PERM_ALL, PERM_NONE, BlockGraph, BlockNode, EdgeKind, OpBlocker, Perm
from qjobd.block.graph import Permission
from qjobd.errors import QMPError
from qjobd.jobs.job import Job, JobDriver, JobOrigin

if TYPE_CHECKING:
    from qjobd.jobs.manager import JobManager
    from qjobd.jobs.transaction import Transaction

__all__ = ["BlockJobDriver", "BlockJobOptions", "error_action"]

logger = logging.getLogger(__name__)


@attrs.frozen
class BlockJobOptions:
    """The options every block job command takes, after QEMU's defaults."""

    #: The job's id ("" when the client gave none: QEMU then refuses it).
    job_id: str
    speed: int = 0
    auto_finalize: bool = True
    auto_dismiss: bool = True
    #: BlockdevOnError values for read and write errors.
    on_source_error: str = "report"
    on_target_error: str = "report"
    #: Who starts the job, and with which command.
    origin: JobOrigin | None = None


def error_action(policy: str, error_number: int | None) -> str:
    """BlockdevOnError -> BlockErrorAction, as QEMU's block_job_error_action decides."""
    if policy in ("enospc", "auto"):
        return "stop" if error_number == errno.ENOSPC else "report"
    return policy


class BlockJobDriver(JobDriver):
    """Base of the drivers that work on block nodes (backup, mirror, ...)."""

    def __init__(self, graph: BlockGraph, common: BlockJobOptions) -> None:
        self.graph = graph
        self.common = common
        self._claims: list[Permission | OpBlocker] = []
        self._reopened: list[BlockNode] = []

    @property
    def user_name(self) -> str:
        """How QEMU names this job as a node's user: "backup job 'j1'"."""
        return f"{self.job_type} job '{self.common.job_id}'"

    def create_job(self, jobs: JobManager, txn: Transaction | None = None) -> Job:
        """Register the job (``created``) with the common options; not started."""
        common = self.common
        return jobs.create(
            common.job_id, self, txn=txn, auto_finalize=common.auto_finalize,
            auto_dismiss=common.auto_dismiss, speed=common.speed,
            origin=common.origin,
        )

    # Section: claims on nodes

    def claim(self, node: BlockNode, role: str, perm: Perm = PERM_NONE,
              shared: Perm = PERM_ALL) -> Permission:
        """A job edge on ``node`` named ``role`` ("main node", "target"...); QMPError
        on a permission conflict."""
        permission = self.graph.acquire(node, self.user_name, False, child_name=role,
                                        perm=perm, shared=shared, kind=EdgeKind.JOB)
        self._claims.append(permission)
        return permission

    def block(self, node: BlockNode) -> OpBlocker:
        """Block other operations on ``node`` while the job holds it."""
        blocker = self.graph.block_for_job(node, self.job_type)
        self._claims.append(blocker)
        return blocker

    def release_claims(self) -> None:
        """Give back every edge and blocker :meth:`claim` and :meth:`block` took."""
        for claim in self._claims:
            claim.release()
        self._claims.clear()

    # Section: read-only nodes the job writes

    def reopen_writable(self, node: BlockNode) -> None:
        """Make a read-only node writable for the job (bdrv_reopen_set_read_only);
        :meth:`restore_read_only` makes it read-only again.  Raises QMPError."""
        if node.read_only:
            node.reopen(False)
            self._reopened.append(node)

    def keep_writable(self, node: BlockNode) -> None:
        """The node stays writable after the job (a pivot made it the active image)."""
        if node in self._reopened:
            self._reopened.remove(node)

    def restore_read_only(self) -> None:
        """Undo :meth:`reopen_writable`; a failure is logged, the node stays writable."""
        while self._reopened:
            node = self._reopened.pop()
            try:
                node.reopen(True)
            except (QMPError, OSError) as error:
                logger.warning("%s: node %s stays read-write: %s", self.user_name,
                               node.node_name, error)

    # Section: error policy

    def on_io_error(self, job: Job, operation: str, error_number: int | None) -> str:
        """Apply the policy for a failed ``operation`` ("read" or "write"): report it
        and return the action ("report", "ignore" or "stop")."""
        policy = (self.common.on_source_error if operation == "read"
                  else self.common.on_target_error)
        action = error_action(policy, error_number)
        job.io_error(operation, action, error_number or errno.EIO)
        return action

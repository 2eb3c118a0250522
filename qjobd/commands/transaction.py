"""Handler of schema/transaction.json: ``transaction``.

Every action is prepared first (its checks, graph changes and job, created but not
started), in order; only when all are prepared are they committed (the jobs start,
snapshots make their nodes read-only).  If one fails to prepare, the actions
already prepared are aborted newest first (jobs cancelled, snapshots undone) and the
failure is the reply (see :mod:`qjobd.commands.actions`).  With ``completion-mode``
grouped the jobs share one Transaction and complete or fail together.

qjobd performs the actions ``blockdev-backup``, ``drive-backup``,
``blockdev-snapshot-sync``, ``blockdev-snapshot``, ``blockdev-snapshot-internal-sync``
and ``abort``.  The other kinds QEMU has (dirty bitmaps) fail, when their turn comes, with an
error saying that qjobd does not perform them.

One difference from qemu-storage-daemon 7.2: when a grouped transaction has created
two jobs or more and a later action fails, QSD hangs for good; qjobd cancels the jobs
(aborting, concluded, null each, newest first) and answers with the error.
"""

from __future__ import annotations

from typing import Any

from qjobd.commands.actions import Action, perform
from qjobd.commands.backup import prepare_blockdev_backup, prepare_drive_backup
from qjobd.commands.context import CommandContext
from qjobd.commands.external_snapshot import (
    prepare_blockdev_snapshot,
    prepare_blockdev_snapshot_sync,
)
from qjobd.commands.internal_snapshot import prepare_internal_snapshot
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobs.job import Job
from qjobd.jobs.transaction import Transaction


def _abort(txn: Transaction | None) -> Job | None:
    raise QMPError("Transaction aborted using Abort action")


def _unsupported(kind: str) -> Action:
    def prepare(txn: Transaction | None) -> Job | None:
        raise QMPError(f"Transaction action '{kind}' is not supported by qjobd")

    return prepare


def _action(context: CommandContext, action: Any) -> Action:
    kind = action.type.value
    if kind == "blockdev-backup":
        return prepare_blockdev_backup(context, action.u.data)
    if kind == "drive-backup":
        return prepare_drive_backup(context, action.u.data)
    if kind == "blockdev-snapshot-sync":
        return prepare_blockdev_snapshot_sync(context, action.u.data)
    if kind == "blockdev-snapshot":
        return prepare_blockdev_snapshot(context, action.u.data)
    if kind == "blockdev-snapshot-internal-sync":
        return prepare_internal_snapshot(context, action.u.data)
    if kind == "abort":
        return _abort
    return _unsupported(kind)


@handler("transaction")
async def transaction(context: CommandContext, arguments: Any) -> None:
    properties = arguments.properties
    mode = None
    if properties is not None and properties.completion_mode is not None:
        mode = properties.completion_mode.value
    actions = [_action(context, action) for action in arguments.actions]
    await perform(context, actions, grouped=mode == "grouped")

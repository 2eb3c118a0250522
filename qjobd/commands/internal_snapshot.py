"""Handlers of schema/snapshot.json: internal snapshots, one image or several.

``blockdev-snapshot-internal-sync`` and ``blockdev-snapshot-delete-internal-sync``
answer as qemu-storage-daemon 7.2 does, check for check; the first is, as in QEMU,
a transaction of one action (:func:`prepare_internal_snapshot`), which the
``transaction`` command also runs: abort deletes the snapshot again.
``snapshot-save``, ``snapshot-load`` and ``snapshot-delete`` are QEMU's migration
jobs, which QSD lacks; their checks and messages are QEMU's, see
:mod:`qjobd.block.internal_snapshots` for where qjobd differs.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from qjobd.block import internal_snapshots as snapshots
from qjobd.block.node import BlockNode, SnapshotEntry
from qjobd.commands.actions import Action, Prepared, perform, refuse_grouped
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobdrivers.snapshot import (
    SnapshotDeleteDriver,
    SnapshotLoadDriver,
    SnapshotSaveDriver,
)
from qjobd.jobs.job import JobDriver
from qjobd.jobs.transaction import Transaction

_log = logging.getLogger(__name__)


def _root_node(context: CommandContext, device: str) -> BlockNode:
    """qmp_get_root_bs."""
    graph = context.services.block
    node = graph.lookup(device)
    if not graph.is_root_node(node):
        raise QMPError("Need a root block node")
    return node


def prepare_internal_snapshot(context: CommandContext, data: Any) -> Action:
    """internal_snapshot_prepare as a transaction action: every check in QEMU's
    order, then the snapshot; abort deletes it again."""

    def prepare(txn: Transaction | None) -> Prepared:
        refuse_grouped("blockdev-snapshot-internal-sync", txn)
        device, name = data.device, data.name
        node = _root_node(context, device)
        context.services.block.check_op(node, "internal-snapshot")
        if node.read_only:
            raise QMPError(f"Device '{device}' is read only")
        if not snapshots.can_snapshot(node):
            raise QMPError(f"Block format '{node.format_name}' used by device '{device}' "
                           "does not support internal snapshots")
        if not name:
            raise QMPError("Name is empty")
        if snapshots.find(node, None, name) is not None:
            raise QMPError(f"Snapshot with name '{name}' already exists on device "
                           f"'{device}'")
        try:
            taken = snapshots.create(node, name)
        except OSError as error:
            raise QMPError(f"Failed to create snapshot '{name}' on device '{device}': "
                           f"{snapshots.reason(error)}") from None
        return Prepared(abort=functools.partial(_undo, node, taken))

    return prepare


def _undo(node: BlockNode, taken: SnapshotEntry) -> None:
    """internal_snapshot_abort: a failure is logged, never raised."""
    try:
        snapshots.delete(node, taken)
    except OSError as error:
        _log.error("Failed to delete snapshot with id '%s' and name '%s' on device '' in "
                   "abort: %s", taken.id, taken.name, snapshots.reason(error))


@handler("blockdev-snapshot-internal-sync")
async def blockdev_snapshot_internal_sync(context: CommandContext, arguments: Any) -> None:
    await perform(context, [prepare_internal_snapshot(context, arguments)], grouped=False)


@handler("blockdev-snapshot-delete-internal-sync")
async def blockdev_snapshot_delete_internal_sync(context: CommandContext,
                                                 arguments: Any) -> Any:
    device, ident, name = arguments.device, arguments.id, arguments.name
    node = _root_node(context, device)
    if ident is None and name is None:
        raise QMPError("Name or id must be provided")
    context.services.block.check_op(node, "internal-snapshot-delete")
    found = snapshots.find(node, ident, name)
    if found is None:
        raise QMPError(f"Snapshot with id '{_or_null(ident)}' and name '{_or_null(name)}' "
                       f"does not exist on device '{device}'")
    info = found.info()
    try:
        snapshots.delete(node, found)
    except OSError as error:
        raise QMPError("Failed to remove snapshot from snapshot list: "
                       f"{snapshots.reason(error)}") from None
    return context.services.model.structure("SnapshotInfo", info)


def _or_null(value: str | None) -> str:
    """STR_OR_NULL."""
    return "null" if value is None else value


async def _start(context: CommandContext, job_id: str, driver: JobDriver) -> None:
    jobs = context.services.jobs
    job = jobs.create(job_id, driver, auto_dismiss=False, origin=context.origin)
    jobs.start(job)
    await job.settle()


@handler("snapshot-save")
async def snapshot_save(context: CommandContext, arguments: Any) -> None:
    work = functools.partial(snapshots.all_save, context.services.block, arguments.tag,
                             arguments.vmstate, list(arguments.devices))
    await _start(context, arguments.job_id, SnapshotSaveDriver(work))


@handler("snapshot-load")
async def snapshot_load(context: CommandContext, arguments: Any) -> None:
    work = functools.partial(snapshots.all_load, context.services.block, arguments.tag,
                             arguments.vmstate, list(arguments.devices))
    await _start(context, arguments.job_id, SnapshotLoadDriver(work))


@handler("snapshot-delete")
async def snapshot_delete(context: CommandContext, arguments: Any) -> None:
    work = functools.partial(snapshots.all_delete, context.services.block, arguments.tag,
                             list(arguments.devices))
    await _start(context, arguments.job_id, SnapshotDeleteDriver(work))

"""Handlers of schema/snapshot.json: internal snapshots, one image or several.

``blockdev-snapshot-internal-sync`` and ``blockdev-snapshot-delete-internal-sync``
answer as qemu-storage-daemon 7.2 does, check for check; the first is also a
``transaction`` action (:func:`prepare_internal_snapshot`), undone when a later
action fails.  ``snapshot-save``, ``snapshot-load`` and ``snapshot-delete`` are
QEMU's migration jobs, which QSD lacks; their checks and messages are QEMU's, see
:mod:`qjobd.block.internal_snapshots` for where qjobd differs.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import attrs

from qjobd.block import internal_snapshots as snapshots
from qjobd.block.node import BlockNode, SnapshotEntry
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobdrivers.snapshot import (
    SnapshotDeleteDriver,
    SnapshotLoadDriver,
    SnapshotSaveDriver,
)
from qjobd.jobs.job import JobDriver

_log = logging.getLogger(__name__)


def _root_node(context: CommandContext, device: str) -> BlockNode:
    """qmp_get_root_bs."""
    graph = context.services.block
    node = graph.lookup(device)
    if not graph.is_root_node(node):
        raise QMPError("Need a root block node")
    return node


@attrs.define
class InternalSnapshotTaken:
    """A snapshot a transaction action took; :meth:`undo` deletes it again."""

    node: BlockNode
    snapshot: SnapshotEntry

    def undo(self) -> None:
        try:
            snapshots.delete(self.node, self.snapshot)
        except OSError as error:
            _log.error("Failed to delete snapshot with id '%s' and name '%s' on device "
                       "'' in abort: %s", self.snapshot.id, self.snapshot.name,
                       snapshots.reason(error))


def prepare_internal_snapshot(context: CommandContext, data: Any, *,
                              grouped: bool = False) -> InternalSnapshotTaken:
    """internal_snapshot_prepare: every check in QEMU's order, then the snapshot."""
    if grouped:
        raise QMPError("Action 'blockdev-snapshot-internal-sync' does not support "
                       "Transaction property completion-mode = grouped")
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
        raise QMPError(f"Snapshot with name '{name}' already exists on device '{device}'")
    try:
        taken = snapshots.create(node, name)
    except OSError as error:
        raise QMPError(f"Failed to create snapshot '{name}' on device '{device}': "
                       f"{snapshots.reason(error)}") from None
    return InternalSnapshotTaken(node, taken)


@handler("blockdev-snapshot-internal-sync")
async def blockdev_snapshot_internal_sync(context: CommandContext, arguments: Any) -> None:
    prepare_internal_snapshot(context, arguments)


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
    job = jobs.create(job_id, driver, auto_dismiss=False, request_id=context.request_id)
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

"""Handlers of blockdev-snapshot-sync and blockdev-snapshot (schema/block-core.json).

An external snapshot freezes a node: an overlay image gets the node as its backing
file and takes the node's place under every parent (the graph's
:meth:`~qjobd.block.graph.BlockGraph.append`), so later writes through those
parents land in the overlay while the node keeps the data of the moment.  Both
commands are, as in QEMU, transactions of one action
(:mod:`qjobd.commands.actions`), and the ``prepare_*`` functions here are also the
``transaction`` command's snapshot actions:

* prepare: external_snapshot_prepare's checks in its order and with its texts,
  then the graph change;
* commit: the frozen node is reopened read-only (skipped, as QEMU's ignored
  failure would skip it, while something still writes to it);
* abort: the graph change is undone; an image blockdev-snapshot-sync created
  stays on disk, as QEMU leaves it;
* clean: blockdev-snapshot-sync's overlay is closed if nothing uses it.

That last step is QEMU's own rule, and it matters here: blockdev-snapshot-sync
opens its overlay for the transaction only (like a node a job opens), so it lives
only as long as a parent uses it.  qemu-storage-daemon has no guest devices, and a
node added with blockdev-add usually has no parent; snapshotting such a node leaves
the new image file and a read-only node, and no overlay node, in QSD and in qjobd
alike.  To keep working on the overlay, add it with blockdev-add (``backing:
null``) and use blockdev-snapshot.

Where qjobd refuses what QSD 7.2 lets through: an overlay that is a running
backup's source ("The overlay is already in use": qjobd's copy-before-write
filter reads its source, QEMU's does not say so, and the backup would go on
reading through the new backing file); a node that is a qcow2 node's ``file``
child (that driver keeps its file node, see ``child_replaceable``); and an
overlay on an image file of the node itself (QEMU's file locks stop it, qjobd has
none).
"""

from __future__ import annotations

import logging
from typing import Any

from qjobd.block import BlockGraph, BlockNode, Perm
from qjobd.block.formats import FormatRegistry
from qjobd.commands.actions import Action, Prepared, perform, refuse_grouped
from qjobd.commands.arguments import value
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobs.transaction import Transaction

__all__ = ["prepare_blockdev_snapshot", "prepare_blockdev_snapshot_sync"]

logger = logging.getLogger(__name__)


def _freezable(graph: BlockGraph, node: BlockNode) -> None:
    """The checks on the node to snapshot, then its data on disk (bdrv_flush)."""
    graph.check_op(node, "external-snapshot")
    if not node.read_only:
        try:
            node.flush()
        except OSError as error:
            raise QMPError("An IO error has occurred") from error


def _inherited_options(node: BlockNode) -> dict[str, Any]:
    """What the overlay takes over from the node's open flags (its open_flags
    minus the backing file, which the node itself becomes)."""
    return {
        "read-only": node.read_only,
        "auto-read-only": node.auto_read_only,
        "discard": "unmap" if node.discard_unmap else "ignore",
        "cache": {"direct": node.cache_direct, "no-flush": node.cache_no_flush},
    }


def _put_on_top(graph: BlockGraph, formats: FormatRegistry, overlay: BlockNode,
                node: BlockNode, *, owned_here: bool) -> Prepared:
    """The checks on the overlay, then ``node`` under it; the remaining steps.

    ``owned_here``: the overlay was opened for this action (blockdev-snapshot-sync),
    so it closes on failure and, at clean, unless a parent uses it.
    """
    try:
        perm, _ = overlay.cumulative_perms()
        if perm & Perm.CONSISTENT_READ:
            # Someone already reads it as an image of its own; a write-only user
            # (a mirror's target) is fine.
            raise QMPError("The overlay is already in use")
        if overlay.is_filter:
            raise QMPError("Filters cannot be used as overlays")
        if overlay.backing is not None:
            raise QMPError("The overlay already has a backing image")
        if not formats.supports_backing(overlay.format_name):
            raise QMPError("The overlay does not support backing images")
        moved = graph.append(overlay, node)
    except BaseException:
        if owned_here:
            graph.release_implicit(overlay)
        raise

    def commit() -> None:
        _make_read_only(node)

    def abort() -> None:
        graph.undo_append(overlay, node, moved)

    def clean() -> None:
        if owned_here:
            graph.release_implicit(overlay)

    return Prepared(commit=commit, abort=abort, clean=clean)


def _make_read_only(node: BlockNode) -> None:
    """external_snapshot_commit: nothing writes to a frozen node any more.

    QEMU ignores a reopen that fails; its permission check refuses while a parent
    (a job, say) still holds write permission, so qjobd skips those too.
    """
    perm, _ = node.cumulative_perms()
    if perm & (Perm.WRITE | Perm.WRITE_UNCHANGED):
        return
    try:
        node.reopen(True)
    except (QMPError, OSError) as error:
        logger.warning("snapshot: node %s stays read-write: %s", node.node_name, error)


def prepare_blockdev_snapshot_sync(context: CommandContext, arguments: Any) -> Action:
    """external_snapshot_prepare for blockdev-snapshot-sync, bound to its arguments."""

    def prepare(txn: Transaction | None) -> Prepared:
        refuse_grouped("blockdev-snapshot-sync", txn)
        services = context.services
        graph = services.block
        node_name: str | None = arguments.node_name
        node = graph.lookup_device_or_node(arguments.device, node_name)
        _freezable(graph, node)
        overlay_name: str | None = arguments.snapshot_node_name
        if node_name is not None and overlay_name is None:
            raise QMPError("New overlay node-name missing")
        if overlay_name is not None and graph.find(overlay_name) is not None:
            raise QMPError("New overlay node-name already in use")
        fmt: str = value(arguments.format, "qcow2")
        path: str = arguments.snapshot_file
        if value(arguments.mode, "absolute-paths") != "existing":
            # The image names the node by its filename, absolute (or json:).
            services.formats.create_image(fmt, path, node.length(), backing=node)
        top = _inherited_options(node)
        if overlay_name is not None:
            top["node-name"] = overlay_name
        if services.formats.supports_backing(fmt):
            # Not the backing file the image names: the node becomes its backing.
            top["backing"] = None
        overlay = graph.open_implicit(services.formats.open_options(fmt, path, **top))
        return _put_on_top(graph, services.formats, overlay, node, owned_here=True)

    return prepare


def prepare_blockdev_snapshot(context: CommandContext, arguments: Any) -> Action:
    """external_snapshot_prepare for blockdev-snapshot, bound to its arguments."""

    def prepare(txn: Transaction | None) -> Prepared:
        refuse_grouped("blockdev-snapshot", txn)
        graph = context.services.block
        node = graph.lookup(arguments.node)
        _freezable(graph, node)
        overlay = graph.lookup(arguments.overlay)
        return _put_on_top(graph, context.services.formats, overlay, node, owned_here=False)

    return prepare


@handler("blockdev-snapshot-sync")
async def blockdev_snapshot_sync(context: CommandContext, arguments: Any) -> None:
    await perform(context, [prepare_blockdev_snapshot_sync(context, arguments)],
                  grouped=False)


@handler("blockdev-snapshot")
async def blockdev_snapshot(context: CommandContext, arguments: Any) -> None:
    await perform(context, [prepare_blockdev_snapshot(context, arguments)], grouped=False)

"""Internal snapshots of block nodes: QEMU's bdrv_snapshot_* and bdrv_all_* rules.

A format that keeps internal snapshots (qcow2) offers a ``SnapshotStore``
(qjobd.block.node) through ``BlockNode.snapshot_store``.  Other nodes pass the question to their
primary child when it is the only one holding data (bdrv_snapshot_fallback), so a
filter above a qcow2 image can be snapshotted and a raw node over a file cannot.
Errors carry QEMU's wording: this module raises QMPError for refusals and lets
OSError through for failures of the image itself, which callers word.

The ``all_*`` functions serve the snapshot-save/load/delete jobs: they act on a list
of nodes as QEMU's do, except that a tag is refused if *any* node already has it
(QEMU checks whether all of them do).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

from qjobd.block.graph import BlockGraph
from qjobd.block.node import BlockNode, SnapshotEntry, SnapshotStore
from qjobd.errors import QMPError

__all__ = ["all_delete", "all_load", "all_save", "can_snapshot", "create", "delete",
           "find", "goto", "reason", "snapshot_list", "store_of"]

_log = logging.getLogger(__name__)


def reason(error: OSError) -> str:
    """How QEMU's error_setg_errno words an errno (strerror), or the message."""
    return os.strerror(error.errno) if error.errno else str(error)


def _fallback(node: BlockNode) -> BlockNode | None:
    """bdrv_snapshot_fallback: the primary child, if no other child holds data."""
    primary = node.primary
    if primary is None:
        return None
    others = [edge for edge in node.child_edges[1:] if edge.name != "backing"]
    return None if others else primary


def store_of(node: BlockNode) -> SnapshotStore | None:
    """The store that snapshots of ``node`` go to, following the fallback children."""
    current: BlockNode | None = node
    while current is not None:
        store = current.snapshot_store
        if store is not None:
            return store
        current = _fallback(current)
    return None


def can_snapshot(node: BlockNode) -> bool:
    """bdrv_can_snapshot: writable all the way down to a node with a store."""
    current: BlockNode | None = node
    while current is not None:
        if current.read_only:
            return False
        if current.snapshot_store is not None:
            return True
        current = _fallback(current)
    return False


def snapshot_list(node: BlockNode) -> Sequence[SnapshotEntry]:
    """bdrv_snapshot_list; OSError(ENOTSUP) without a store."""
    return _require_store(node).snapshots


def find(node: BlockNode, ident: str | None, name: str | None) -> SnapshotEntry | None:
    """bdrv_snapshot_find_by_id_and_name: both must match when both are given."""
    try:
        snapshots = snapshot_list(node)
    except OSError as error:
        raise QMPError(f"Failed to get a snapshot list: {reason(error)}") from None
    for snapshot in snapshots:
        if (ident is None or snapshot.id == ident) and (name is None or snapshot.name == name):
            return snapshot
    return None


def _by_name(node: BlockNode, name: str) -> SnapshotEntry | None:
    """bdrv_snapshot_find: by name, nothing when the node keeps no snapshots."""
    store = store_of(node)
    if store is None:
        return None
    return next((s for s in store.snapshots if s.name == name), None)


def _require_store(node: BlockNode) -> SnapshotStore:
    store = store_of(node)
    if store is None:
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))
    return store


def create(node: BlockNode, name: str) -> SnapshotEntry:
    """bdrv_snapshot_create; OSError when the image fails."""
    return _require_store(node).create_snapshot(name)


def delete(node: BlockNode, snapshot: SnapshotEntry) -> None:
    """bdrv_snapshot_delete of a snapshot found on ``node``."""
    _require_store(node).delete_snapshot(snapshot)


def goto(node: BlockNode, id_or_name: str) -> None:
    """bdrv_snapshot_goto: by id first, then by name; QMPError with QEMU's text."""
    if node.dirty_bitmaps:
        raise QMPError("Device has active dirty bitmaps")
    store = _require_store(node)
    snapshots = store.snapshots
    snapshot = next((s for s in snapshots if s.id == id_or_name), None)
    if snapshot is None:
        snapshot = next((s for s in snapshots if s.name == id_or_name), None)
    try:
        if snapshot is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        store.load_snapshot(snapshot)
    except OSError as error:
        raise QMPError(f"Failed to load snapshot: {reason(error)}") from None


# Section: groups of nodes (snapshot-save, snapshot-load, snapshot-delete)


def all_devices(graph: BlockGraph, devices: list[str]) -> list[BlockNode]:
    """bdrv_all_get_snapshot_devices with a device list, then bdrv_all_can_snapshot."""
    if not devices:
        raise QMPError("At least one device is required for snapshot")
    nodes = []
    for name in devices:
        node = graph.find(name)
        if node is None:
            raise QMPError(f"No block device node '{name}'")
        nodes.append(node)
    for node in nodes:
        if not can_snapshot(node):
            raise QMPError(f"Device '{node.node_name}' is writable but does not support "
                           "snapshots")
    return nodes


def vmstate_node(nodes: list[BlockNode], vmstate: str) -> BlockNode:
    """bdrv_all_find_vmstate_bs: the node among ``nodes`` called ``vmstate``."""
    for node in nodes:
        if node.node_name == vmstate:
            if not can_snapshot(node):
                raise QMPError(f"vmstate block device '{vmstate}' does not support snapshots")
            return node
    raise QMPError(f"vmstate block device '{vmstate}' does not exist")


def all_save(graph: BlockGraph, tag: str, vmstate: str, devices: list[str]) -> None:
    """save_snapshot, disk-only: the tag on every node or, on failure, on none."""
    nodes = all_devices(graph, devices)
    if any(_by_name(node, tag) is not None for node in nodes):
        raise QMPError(f"Snapshot '{tag}' already exists in one or more devices")
    vmstate_node(nodes, vmstate)
    made: list[tuple[BlockNode, SnapshotEntry]] = []
    for node in nodes:
        try:
            made.append((node, create(node, tag)))
        except OSError:
            for done, snapshot in reversed(made):
                _delete_quietly(done, snapshot)
            raise QMPError(f"Could not create snapshot '{tag}' on '{node.node_name}'") from None


def all_load(graph: BlockGraph, tag: str, vmstate: str, devices: list[str]) -> None:
    """load_snapshot without a VM state: every node reverted, checked beforehand."""
    nodes = all_devices(graph, devices)
    if any(_by_name(node, tag) is None for node in nodes):
        raise QMPError(f"Snapshot '{tag}' does not exist in one or more devices")
    vmstate_node(nodes, vmstate)
    for node in nodes:
        try:
            goto(node, tag)
        except QMPError as error:
            raise QMPError(f"Could not load snapshot '{tag}' on '{node.node_name}': "
                           f"{error.desc}") from None


def all_delete(graph: BlockGraph, tag: str, devices: list[str]) -> None:
    """bdrv_all_delete_snapshot: the tag removed from every node that has it."""
    nodes = all_devices(graph, devices)
    for node in nodes:
        snapshot = _by_name(node, tag)
        if snapshot is None:
            continue
        try:
            delete(node, snapshot)
        except OSError as error:
            raise QMPError(f"Could not delete snapshot '{tag}' on '{node.node_name}': "
                           f"{reason(error)}") from None


def _delete_quietly(node: BlockNode, snapshot: SnapshotEntry) -> None:
    """Undo a snapshot during a rollback; a failure there is logged, as QEMU does."""
    try:
        delete(node, snapshot)
    except OSError as error:
        _log.error("Failed to delete snapshot with id '%s' and name '%s' on '%s': %s",
                   snapshot.id, snapshot.name, node.node_name, error)

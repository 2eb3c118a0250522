"""Permissions, op blockers and job filters.

Texts recorded from qemu-storage-daemon 7.2 while a backup job (j1: src -> dst) was
running: blockdev-del dst, blockdev-del src, a second backup writing to src, a
backup to a read-only node.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.images import MiB, make_image
from helpers.nodes import raw_opts

from qjobd.block import PERM_ALL, BlockGraph, Perm
from qjobd.errors import QMPError

# What a backup's copy-before-write filter asks of its source and target.
SOURCE_PERMS = (Perm.CONSISTENT_READ, PERM_ALL & ~Perm.WRITE)
TARGET_PERMS = (Perm.WRITE, PERM_ALL & ~Perm.WRITE)


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    return {name: make_image(tmp_path / f"{name}.img", 4 * MiB)
            for name in ("s", "d", "d2")}


def start_backup(graph: BlockGraph, source: str, target: str) -> tuple[object, ...]:
    """What the backup job does to the graph (as QEMU does it)."""
    src = graph.lookup(source)
    dst = graph.lookup(target)
    graph.check_op(src, "backup-source")
    graph.check_op(dst, "backup-target")
    cbw = graph.insert_filter("copy-before-write", src, file_perm=SOURCE_PERMS)
    try:
        graph.attach_child(cbw, dst, "target", fixed=TARGET_PERMS)
    except QMPError:
        graph.remove_filter(cbw)
        raise
    return cbw, graph.block_for_job(cbw, "backup"), graph.block_for_job(dst, "backup")


def test_backup_conflicts_match_qsd(graph: BlockGraph, images: dict[str, Path]) -> None:
    for name, key in (("src", "s"), ("dst", "d"), ("dst2", "d2")):
        graph.add(raw_opts(name, images[key]))
    cbw, *_ = start_backup(graph, "src", "dst")
    with pytest.raises(QMPError) as info:
        graph.delete("dst")
    assert info.value.desc == "Node 'dst' is busy: block device is in use by block job: backup"
    with pytest.raises(QMPError) as info:
        graph.delete("src")
    assert info.value.desc == "Block device src is in use"
    with pytest.raises(QMPError) as info:
        start_backup(graph, "dst2", "dst")
    assert info.value.desc == "Node 'dst' is busy: block device is in use by block job: backup"
    names_before = [n["node-name"] for n in graph.query_named_block_nodes()]
    with pytest.raises(QMPError) as info:
        start_backup(graph, "dst2", "src")
    new_filter = info.value.desc.split("required by node '")[1].split("'")[0]
    # QSD: "Could not create node: " + this (the prefix is the job's).
    assert info.value.desc == (
        f"Permission conflict on node 'src': permissions 'write' are both required by "
        f"node '{new_filter}' (uses node 'src' as 'target' child) and unshared by "
        f"node '{cbw.node_name}' (uses node 'src' as 'file' child).")  # type: ignore[attr-defined]
    assert [n["node-name"] for n in graph.query_named_block_nodes()] == names_before
    # A second backup from the same source is fine (QSD allowed it too).
    start_backup(graph, "src", "dst2")
    assert graph.query_named_block_nodes()[0]["drv"] == "copy-before-write"
    assert graph.query_named_block_nodes()[0]["file"] == str(images["s"])
    assert not graph.is_root_node(graph.lookup("src"))


def test_filter_shape_and_removal(graph: BlockGraph, images: dict[str, Path]) -> None:
    src = graph.add(raw_opts("src", images["s"]))
    parent = graph.add({"driver": "raw", "node-name": "top", "file": "src"})
    cbw = graph.insert_filter("copy-before-write", src, file_perm=SOURCE_PERMS)
    assert parent.children["file"] is cbw
    nested = graph.query_named_block_nodes(flat=False)
    info = next(n for n in nested if n["node-name"] == cbw.node_name)
    assert info["backing_file_depth"] == 1
    assert info["image"]["format"] == "copy-before-write"
    assert info["image"]["backing-image"]["format"] == "raw"
    graph.remove_filter(cbw)
    assert parent.children["file"] is src
    assert graph.find(cbw.node_name) is None


def test_writers_conflict_and_release(graph: BlockGraph, images: dict[str, Path]) -> None:
    node = graph.add(raw_opts("n", images["s"]))
    first = graph.acquire(node, "mirror job 'm1'", True, child_name="target")
    with pytest.raises(QMPError) as info:
        graph.acquire("n", "mirror job 'm2'", True, child_name="target")
    assert info.value.desc == (
        "Permission conflict on node 'n': permissions 'write' are both required by "
        "mirror job 'm1' (uses node 'n' as 'target' child) and unshared by mirror job "
        "'m2' (uses node 'n' as 'target' child).")
    # Readers that share write can come and go.
    graph.acquire(node, "backup job 'b'", False).release()
    # The file node underneath is protected as well.
    child = node.children["file"]
    with pytest.raises(QMPError, match="Permission conflict on node '#block"):
        graph.acquire(child, "mirror job 'm3'", True)
    first.release()
    with graph.acquire("n", "mirror job 'm2'", True):
        pass
    graph.delete("n")


def test_read_only_node(graph: BlockGraph, images: dict[str, Path]) -> None:
    node = graph.add(raw_opts("ro", images["s"], **{"read-only": True}))
    with pytest.raises(QMPError) as info:
        graph.acquire(node, "backup job 'j'", True)
    # QSD: "Could not create node: Block node is read-only" for a backup target.
    assert info.value.desc == "Block node is read-only"
    assert not node.parents


def test_update_and_backend_users(graph: BlockGraph, images: dict[str, Path]) -> None:
    from qjobd.block import EdgeKind

    node = graph.add(raw_opts("n", images["s"]))
    reader = graph.acquire(node, "mirror job 'm'", False)
    writer = graph.acquire(node, "stream job 's'", True, share_write=True)
    with pytest.raises(QMPError):
        reader.update(Perm.CONSISTENT_READ, PERM_ALL & ~Perm.WRITE)
    assert reader.edge.shared == PERM_ALL
    writer.release()
    reader.update(Perm.CONSISTENT_READ, PERM_ALL & ~Perm.WRITE)
    reader.release()
    export = graph.acquire(node, "block device 'exp'", False, kind=EdgeKind.BACKEND)
    assert graph.is_root_node(node)
    with pytest.raises(QMPError, match="Node n is in use"):
        graph.delete("n")
    export.release()


def test_op_blocker_release(graph: BlockGraph, images: dict[str, Path]) -> None:
    node = graph.add(raw_opts("n", images["s"]))
    blocker = graph.block_for_job(node, "mirror", exempt=frozenset({"resize"}))
    graph.check_op(node, "resize")
    with pytest.raises(QMPError, match="block job: mirror"):
        graph.check_op(node, "backup-source")
    blocker.release()
    blocker.release()
    graph.check_op(node)
    graph.delete("n")

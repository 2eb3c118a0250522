"""The graph's external-snapshot step (bdrv_append) and its undo, on real images.

What moves where is checked on the graph itself; what the moved links mean is
checked by reading through them (a write through the old parent must land in the
overlay) and with qemu-img.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.images import MiB
from helpers.qcow2 import check, make_qcow2, qcow2_opts, qemu_io, raw_content

from qjobd.block import BlockGraph, EdgeKind
from qjobd.errors import QMPError


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    base = make_qcow2(tmp_path / "base.qcow2", 4 * MiB)
    qemu_io(base, "write -P 7 0 1M")
    return base, make_qcow2(tmp_path / "over.qcow2", 4 * MiB)


def test_overlay_takes_the_place_of_the_node(graph: BlockGraph, images: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    base_path, over_path = images
    base = graph.add(qcow2_opts("base", base_path))
    disk = graph.add({"driver": "raw", "node-name": "disk", "file": "base"})
    job = graph.acquire(base, "backup job 'j'", False, kind=EdgeKind.JOB)
    over = graph.add(qcow2_opts("over", over_path, backing=None))

    moved = graph.append(over, base)
    assert disk.child("file") is over
    assert over.backing is base
    # The job's reference stays on the node, the overlay's link is its only other.
    assert [(e.kind, e.parent) for e in base.parents] == [
        (EdgeKind.NODE, over), (EdgeKind.JOB, None)]
    assert [e.parent for e in moved] == [disk]
    with pytest.raises(QMPError, match="node is used as backing hd of 'over'"):
        graph.check_op(base, "external-snapshot")

    disk.pwrite(2 * MiB, b"\x05" * 65536)
    disk.flush()
    assert disk.pread(0, 4) == b"\x07" * 4
    graph.undo_append(over, base, moved)
    assert disk.child("file") is base
    assert over.backing is None
    assert [e.kind for e in base.parents] == [EdgeKind.NODE, EdgeKind.JOB]
    graph.check_op(base, "external-snapshot")
    job.release()
    graph.close_all()
    # The write went into the overlay only; the node's image is as it was.
    assert raw_content(base_path, tmp_path / "b.raw")[2 * MiB:2 * MiB + 4] == bytes(4)
    assert raw_content(over_path, tmp_path / "o.raw")[2 * MiB:2 * MiB + 4] == b"\x05" * 4
    check(base_path)
    check(over_path)


def test_cycles_are_refused(graph: BlockGraph, images: tuple[Path, Path]) -> None:
    base_path, over_path = images
    base = graph.add(qcow2_opts("base", base_path, backing=None))
    with pytest.raises(QMPError) as error:
        graph.append(base, base)
    assert error.value.desc == "Making 'base' a backing child of 'base' would create a cycle"
    # A node that sits above the overlay would end up below it too.
    top = graph.add(qcow2_opts("top", over_path, backing=None))
    wrapped = graph.add({"driver": "raw", "node-name": "w", "file": "top"})
    with pytest.raises(QMPError, match="Making 'w' a backing child of 'top' would create"):
        graph.append(top, wrapped)
    assert base.parents == []
    assert top.backing is None
    assert wrapped.parents == []
    # Another node on the node's own file would overwrite what it must keep.
    again = graph.add(qcow2_opts("again", base_path, backing=None))
    with pytest.raises(QMPError) as error:
        graph.append(again, base)
    assert error.value.desc == (
        "Node 'again' is on an image file of 'base' and cannot be its overlay")
    assert again.backing is None


def test_links_a_driver_keeps_for_itself_stay(graph: BlockGraph,
                                              images: tuple[Path, Path]) -> None:
    base_path, over_path = images
    file = graph.add({"driver": "file", "node-name": "f", "filename": str(base_path)})
    graph.add({"driver": "qcow2", "node-name": "q", "file": "f", "backing": None})
    over = graph.add(qcow2_opts("over", over_path, backing=None))
    with pytest.raises(QMPError) as error:
        graph.append(over, file)
    assert error.value.desc == ("Cannot put an overlay under the 'file' link of node 'q' "
                                "(not supported by qjobd)")
    assert over.backing is None
    assert [e.parent.node_name for e in file.parents if e.parent] == ["q"]


def test_a_permission_conflict_changes_nothing(graph: BlockGraph,
                                               images: tuple[Path, Path]) -> None:
    base_path, over_path = images
    base = graph.add(qcow2_opts("base", base_path))
    disk = graph.add({"driver": "raw", "node-name": "disk", "file": "base"})
    writer = graph.acquire(disk, "backup job 'j'", True, child_name="target")
    over = graph.add(qcow2_opts("over", over_path, backing=None, **{"read-only": True}))
    with pytest.raises(QMPError, match="Block node is read-only"):
        graph.append(over, base)
    assert disk.child("file") is base
    assert over.backing is None
    assert over.parents == []
    writer.release()

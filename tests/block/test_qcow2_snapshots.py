"""Internal snapshots of qcow2 images, judged by qemu-img.

Each sequence of writes and snapshot operations runs twice: through a qjobd qcow2
node, and with qemu-io and ``qemu-img snapshot -c/-a/-d`` on a copy.  Afterwards
the two images must list the same snapshots, read the same in the active layer and
in every snapshot (``qemu-img compare`` of ``qemu-img convert -l`` outputs), and
qjobd's must pass ``qemu-img check`` with neither errors nor leaks.  The crash test
kills a process in the middle of snapshot operations: qjobd switches the header
once per operation, so even then the image has no leak, let alone corruption.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.images import MiB
from helpers.qcow2 import (
    assert_same_snapshots,
    check,
    check_status,
    make_qcow2,
    poke,
    qcow2_opts,
    qemu_io,
    run,
    snapshot_listing,
)

from qjobd.block import BlockGraph
from qjobd.block.qcow2.node import Qcow2Node
from qjobd.errors import QMPError

SIZE = 16 * MiB

Op = tuple[str, ...]


def random_ops(seed: int, count: int = 40, size: int = SIZE) -> list[Op]:
    """Writes, zero writes and snapshot create/load/delete, always valid."""
    rng = random.Random(seed)
    ops: list[Op] = []
    live: list[str] = []
    made = 0
    for _ in range(count):
        roll = rng.random()
        if roll < 0.2:
            made += 1
            live.append(f"s{made}")
            ops.append(("create", live[-1]))
        elif roll < 0.3 and live:
            ops.append(("load", rng.choice(live)))
        elif roll < 0.4 and live:
            victim = rng.choice(live)
            live.remove(victim)
            ops.append(("delete", victim))
        else:
            offset = rng.randrange(0, size)
            length = min(rng.randrange(1, 2 * MiB), size - offset)
            kind = "zero" if rng.random() < 0.25 else "write"
            ops.append((kind, str(offset), str(length), str(rng.randrange(1, 255))))
    return ops


def apply_with_qjobd(graph: BlockGraph, image: Path, ops: list[Op]) -> None:
    node = graph.add(qcow2_opts("w", image))
    assert isinstance(node, Qcow2Node)
    qcow2 = node.image
    for op in ops:
        if op[0] == "create":
            qcow2.create_snapshot(op[1])
        elif op[0] in ("load", "delete"):
            found = [s for s in qcow2.snapshots if s.name == op[1]]
            assert len(found) == 1, op
            if op[0] == "load":
                qcow2.load_snapshot(found[0])
            else:
                qcow2.delete_snapshot(found[0])
        elif op[0] == "zero":
            node.write_zeroes(int(op[1]), int(op[2]))
        else:
            node.pwrite(int(op[1]), bytes([int(op[3])]) * int(op[2]))
    graph.delete("w")


def apply_with_qemu(image: Path, ops: list[Op]) -> None:
    pending: list[str] = []

    def flush() -> None:
        if pending:
            qemu_io(image, *pending)
            pending.clear()

    for op in ops:
        if op[0] in ("create", "load", "delete"):
            flush()
            flag = {"create": "-c", "load": "-a", "delete": "-d"}[op[0]]
            run("qemu-img", "snapshot", flag, op[1], str(image))
        elif op[0] == "zero":
            pending.append(f"write -z {op[1]} {op[2]}")
        else:
            pending.append(f"write -P {op[3]} {op[1]} {op[2]}")
    flush()


def snapshot_names(image: Path) -> list[str]:
    return [name for _, name in snapshot_listing(image)]


def assert_clean(image: Path) -> None:
    report = check(image)
    assert report.get("leaks", 0) == 0, report
    assert report.get("corruptions", 0) == 0, report


@pytest.mark.parametrize(("cluster_size", "compat", "seed"), [
    (512, "1.1", 1), (64 << 10, "1.1", 2), (64 << 10, "0.10", 3), (2 << 20, "1.1", 4),
    (64 << 10, "1.1", 5)])
def test_snapshot_operations_match_qemu_img(graph: BlockGraph, tmp_path: Path,
                                            cluster_size: int, compat: str, seed: int) -> None:
    ours = make_qcow2(tmp_path / "ours.qcow2", SIZE, cluster_size=cluster_size, compat=compat)
    qemu_io(ours, "write -P 9 0 3M", "write -z 5M 1M", f"write -P 10 {SIZE - 70000} 70000")
    theirs = tmp_path / "theirs.qcow2"
    shutil.copy(ours, theirs)
    ops = random_ops(seed)
    apply_with_qjobd(graph, ours, ops)
    apply_with_qemu(theirs, ops)
    assert_same_snapshots(ours, theirs, tmp_path)


def test_images_qemu_snapshotted_and_compressed(graph: BlockGraph, tmp_path: Path) -> None:
    """Snapshots qemu-img made, and compressed clusters, survive qjobd's operations."""
    source = make_qcow2(tmp_path / "source.qcow2", SIZE)
    qemu_io(source, "write -P 3 0 4M")
    ours = tmp_path / "ours.qcow2"
    run("qemu-img", "convert", "-c", "-O", "qcow2", str(source), str(ours))
    run("qemu-img", "snapshot", "-c", "theirs-1", str(ours))
    qemu_io(ours, "write -P 4 1M 64k")
    run("qemu-img", "snapshot", "-c", "theirs-2", str(ours))
    theirs = tmp_path / "theirs.qcow2"
    shutil.copy(ours, theirs)
    ops: list[Op] = [("create", "mine"), ("write", "0", "100000", "5"),
                     ("delete", "theirs-1"), ("load", "theirs-2"),
                     ("write", "2000000", "70000", "6"), ("delete", "mine")]
    apply_with_qjobd(graph, ours, ops)
    apply_with_qemu(theirs, ops)
    assert_same_snapshots(ours, theirs, tmp_path)


def test_sparse_image_larger_than_4_gib(graph: BlockGraph, tmp_path: Path) -> None:
    size = 6 << 30
    ours = make_qcow2(tmp_path / "ours.qcow2", size)
    qemu_io(ours, "write -P 1 0 1M", f"write -P 2 {5 << 30} 1M")
    theirs = tmp_path / "theirs.qcow2"
    shutil.copy(ours, theirs)
    ops: list[Op] = [("create", "a"), ("write", str((5 << 30) + 4096), "8192", "3"),
                     ("create", "b"), ("load", "a"), ("delete", "a")]
    apply_with_qjobd(graph, ours, ops)
    apply_with_qemu(theirs, ops)
    assert_clean(ours)
    run("qemu-img", "compare", str(ours), str(theirs))
    assert snapshot_names(ours) == snapshot_names(theirs) == ["b"]


def test_snapshot_ids_and_fields(graph: BlockGraph, tmp_path: Path) -> None:
    image = make_qcow2(tmp_path / "a.qcow2", SIZE)
    run("qemu-img", "snapshot", "-c", "x", str(image))
    node = graph.add(qcow2_opts("w", image))
    assert isinstance(node, Qcow2Node)
    made = node.image.create_snapshot("y")
    assert (made.id, made.name, made.vm_state_size, made.disk_size) == ("2", "y", 0, SIZE)
    graph.delete("w")
    listed = run("qemu-img", "snapshot", "-l", str(image)).splitlines()[2:]
    assert [line.split()[:2] for line in listed] == [["1", "x"], ["2", "y"]]


def test_corrupt_snapshot_l1_is_refused_and_changes_nothing(graph: BlockGraph,
                                                             tmp_path: Path) -> None:
    image = make_qcow2(tmp_path / "a.qcow2", SIZE)
    qemu_io(image, "write -P 1 0 1M")
    run("qemu-img", "snapshot", "-c", "x", str(image))
    header = run("qemu-img", "info", "--output=json", str(image))
    assert '"x"' in header
    # The snapshot table's first entry begins with its L1 offset: make it unaligned.
    with open(image, "rb") as file:
        file.seek(64)
        table = int.from_bytes(file.read(8), "big")
    poke(image, table, (12345).to_bytes(8, "big"))
    before = image.read_bytes()
    node = graph.add(qcow2_opts("w", image))
    assert isinstance(node, Qcow2Node)
    snapshot = node.image.snapshots[0]
    for operation in (node.image.load_snapshot, node.image.delete_snapshot):
        with pytest.raises(QMPError, match="Snapshot L1 table offset invalid"):
            operation(snapshot)
    graph.delete("w")
    assert image.read_bytes() == before


# Section: kill -9 in the middle of snapshot operations

_CHILD = textwrap.dedent("""
    import sys
    from qjobd.block import BlockGraph
    graph = BlockGraph()
    node = graph.add({"driver": "qcow2", "node-name": "w",
                      "file": {"driver": "file", "filename": sys.argv[1]}})
    image = node.image
    step = 0
    while True:
        step += 1
        node.pwrite((step * 69632) % (15 << 20), bytes([step % 250 + 1]) * 69632)
        made = image.create_snapshot(f"k{step}")
        print("created", made.name, flush=True)
        if step % 3 == 0:
            image.load_snapshot(image.snapshots[0])
        if len(image.snapshots) > 4:
            gone = image.snapshots[1]
            image.delete_snapshot(gone)
            print("deleted", gone.name, flush=True)
""")


@pytest.mark.parametrize("seed", range(12))
def test_kill_9_during_snapshot_operations(tmp_path: Path, seed: int) -> None:
    image = make_qcow2(tmp_path / "a.qcow2", SIZE)
    qemu_io(image, "write -P 7 0 8M")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(image)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    rng = random.Random(seed)
    wanted = rng.randrange(2, 14)
    done: list[str] = []
    for line in child.stdout:
        done.append(line)
        if len(done) >= wanted:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    # A snapshot operation is one header write: no leak, no corruption, ever.  Plain
    # writes may leak (their tables were not written back); they cannot corrupt.
    assert check_status(image) in (0, 3), run("qemu-img", "check", str(image))
    alive = set(snapshot_names(image))
    for line in done:
        verb, name = line.split()
        if verb == "created" and not any(f"deleted {name}" == d.strip() for d in done):
            assert name in alive, (name, alive)
        if verb == "deleted":
            assert name not in alive

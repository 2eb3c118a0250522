"""Writing qcow2 images, judged by qemu-img check, qemu-img compare and qemu-io.

Each sequence of writes is done twice: through a qjobd qcow2 node, and by qemu-io
on a copy of the same image.  The two images must then read the same
(``qemu-img compare``), and qjobd's must pass ``qemu-img check`` with no errors and
no leaks.  Crash tests kill a writer process at random moments: its image may leak
clusters but never be corrupt, and what it had flushed must read back.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.images import MiB, make_image
from helpers.nodes import raw_opts
from helpers.qcow2 import (
    assert_not_corrupt,
    assert_same_snapshots,
    check,
    check_status,
    info,
    make_chain,
    make_qcow2,
    poke,
    qcow2_opts,
    qemu_io,
    raw_content,
    run,
)

from qjobd.block import BlockGraph, copy_chunk
from qjobd.block.node import HostFill
from qjobd.errors import QMPError

KiB = 1 << 10
SIZE = 16 * MiB


def random_writes(seed: int, count: int = 60, size: int = SIZE, *,
                  direct: float = 0.0) -> list[tuple[str, int, int, int]]:
    """(kind, offset, length, pattern) with unaligned offsets and lengths; a share
    ``direct`` of the data writes go through write_direct."""
    rng = random.Random(seed)
    ops = []
    for _ in range(count):
        offset = rng.randrange(0, size)
        length = min(rng.randrange(1, 3 * MiB), size - offset)
        kind = "zero" if rng.random() < 0.25 else "data"
        if kind == "data" and rng.random() < direct:
            kind = "direct"
        ops.append((kind, offset, length, rng.randrange(1, 255)))
    return ops


class CopyingFill:
    """A write_direct fill that copies the same offsets of ``source_fd`` with
    copy_file_range, as the copy engine does."""

    def __init__(self, source_fd: int) -> None:
        self.source_fd = source_fd

    def check(self, fd: int) -> None:
        os.copy_file_range(self.source_fd, fd, 0, 0, 0)

    def __call__(self, fd: int, position: int, guest: int, count: int) -> None:
        done = 0
        while done < count:
            done += os.copy_file_range(self.source_fd, fd, count - done, guest + done,
                                       position + done)


class FailingFill:
    """A fill that writes half of its bytes as garbage, then fails."""

    def check(self, fd: int) -> None:
        pass

    def __call__(self, fd: int, position: int, guest: int, count: int) -> None:
        os.pwrite(fd, b"\xee" * (count // 2), position)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))


def apply(graph: BlockGraph, image: Path, ops: list[tuple[str, int, int, int]]) -> None:
    node = graph.add(qcow2_opts("w", image))
    scratch = os.open(image.with_suffix(".scratch"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for index, (kind, offset, length, pattern) in enumerate(ops):
            if kind == "zero":
                node.write_zeroes(offset, length)
            elif kind == "direct":
                # The pattern goes into a scratch file first, then file to file.
                os.pwrite(scratch, bytes([pattern]) * length, offset)
                assert node.write_direct(offset, length, CopyingFill(scratch))
            else:
                node.pwrite(offset, bytes([pattern]) * length)
            if index == len(ops) // 2:
                node.flush()
    finally:
        os.close(scratch)
    graph.delete("w")


def apply_with_qemu_io(image: Path, ops: list[tuple[str, int, int, int]]) -> None:
    commands = [f"write -z {o} {n}" if kind == "zero" else f"write -P {p} {o} {n}"
                for kind, o, n, p in ops]
    for start in range(0, len(commands), 20):
        qemu_io(image, *commands[start:start + 20])


def assert_same_as_qemu(graph: BlockGraph, image: Path, ops: list[tuple[str, int, int, int]],
                        tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.qcow2"
    shutil.copy(image, theirs)
    apply(graph, image, ops)
    apply_with_qemu_io(theirs, ops)
    report = check(image)
    assert report.get("leaks", 0) == 0, report
    assert report.get("corruptions", 0) == 0, report
    run("qemu-img", "compare", str(image), str(theirs))


@pytest.mark.parametrize("cluster_size", [512, 64 * KiB, 2 * MiB])
@pytest.mark.parametrize("compat", ["0.10", "1.1"])
@pytest.mark.parametrize("with_backing", [False, True])
def test_random_writes_match_qemu_io(graph: BlockGraph, tmp_path: Path, cluster_size: int,
                                     compat: str, with_backing: bool) -> None:
    backing = None
    if with_backing:
        backing = make_qcow2(tmp_path / "base.qcow2", SIZE)
        qemu_io(backing, "write -P 7 0 16M")
    image = make_qcow2(tmp_path / "w.qcow2", SIZE, backing=backing, cluster_size=cluster_size,
                       compat=compat)
    assert_same_as_qemu(graph, image, random_writes(cluster_size + len(compat)), tmp_path)


@pytest.mark.parametrize("cluster_size", [512, 64 * KiB, 2 * MiB])
@pytest.mark.parametrize("with_backing", [False, True])
def test_direct_writes_match_qemu_io(graph: BlockGraph, tmp_path: Path, cluster_size: int,
                                     with_backing: bool) -> None:
    """write_direct (data copied file to file into the image) mixed with pwrite and
    zero writes: what qemu-io makes of the same writes, clean and leak-free."""
    backing = None
    if with_backing:
        backing = make_qcow2(tmp_path / "base.qcow2", SIZE)
        qemu_io(backing, "write -P 7 0 16M")
    image = make_qcow2(tmp_path / "w.qcow2", SIZE, backing=backing, cluster_size=cluster_size)
    assert_same_as_qemu(graph, image, random_writes(cluster_size + 3, direct=0.6), tmp_path)


def compressed_with_snapshot(tmp_path: Path) -> tuple[Path, Path]:
    """A compressed image, partly rewritten, with snapshot "before" of it; and a raw
    copy of what the snapshot holds."""
    plain = make_qcow2(tmp_path / "plain.qcow2", SIZE)
    qemu_io(plain, "write -P 1 0 16M")
    image = tmp_path / "w.qcow2"
    run("qemu-img", "convert", "-c", "-O", "qcow2", str(plain), str(image))
    qemu_io(image, "write -P 2 4M 4M")
    run("qemu-img", "snapshot", "-c", "before", str(image))
    frozen = tmp_path / "frozen.raw"
    run("qemu-img", "convert", "-O", "raw", str(image), str(frozen))
    return image, frozen


def test_direct_writes_over_compressed_and_snapshot_clusters(graph: BlockGraph,
                                                             tmp_path: Path) -> None:
    """Clusters write_direct does not own (compressed, shared with a snapshot) get
    new ones, partly written clusters keep their old bytes, the snapshot stays."""
    image, frozen = compressed_with_snapshot(tmp_path)
    ops = [("direct", offset, length, pattern)
           for _, offset, length, pattern in random_writes(8, count=30)]
    assert_same_as_qemu(graph, image, ops, tmp_path)
    run("qemu-img", "snapshot", "-a", "before", str(image))
    check(image)
    run("qemu-img", "compare", "-F", "raw", str(image), str(frozen))


def test_failed_direct_write_changes_nothing(graph: BlockGraph, tmp_path: Path) -> None:
    """A fill that fails half way: no L2 entry moved, the new clusters freed again
    (no leak), and the image reads as before; clusters it owns may hold part of
    the new bytes, as after a failed pwrite."""
    base = make_qcow2(tmp_path / "base.qcow2", SIZE)
    qemu_io(base, "write -P 7 0 16M")
    image = make_qcow2(tmp_path / "w.qcow2", SIZE, backing=base)
    qemu_io(image, "write -P 3 1M 1M")
    before = raw_content(image, tmp_path / "before.raw")

    node = graph.add(qcow2_opts("w", image))
    for offset, length in ((4 * MiB + 4096, 3 * MiB), (0, 512 * KiB)):
        with pytest.raises(OSError, match="Invalid cross-device link"):
            node.write_direct(offset, length, FailingFill())
    graph.delete("w")
    report = check(image)
    assert report.get("leaks", 0) == 0, report
    assert raw_content(image, tmp_path / "after.raw") == before


def test_copies_into_qcow2_go_file_to_file(graph: BlockGraph, tmp_path: Path) -> None:
    """The copy engine puts data into a qcow2 target with write_direct: a raw source
    lands unchanged, and so does a qcow2 chain (its host extents come from the
    image that holds each run), with unaligned chunks and holes in between."""
    source = make_image(tmp_path / "s.raw", SIZE,
                        [(0, 3 * MiB + 100), (5 * MiB + 512, 2 * MiB), (12 * MiB, 4 * MiB)],
                        seed=4)
    chain = make_chain(tmp_path, 2, size=SIZE, cluster_size=4096)
    for name, src in (("raw", graph.add(raw_opts("sraw", source, **{"read-only": True}))),
                      ("chain", graph.add(qcow2_opts("schain", chain[-1],
                                                     **{"read-only": True})))):
        target = make_qcow2(tmp_path / f"t-{name}.qcow2", SIZE, cluster_size=16 * KiB)
        dst = graph.add(qcow2_opts(f"t{name}", target))
        written: list[tuple[int, int]] = []
        original = dst.write_direct

        def spy(offset: int, length: int, fill: HostFill, *,
                known_nonzero: bool = False, original: Any = original,
                written: list[tuple[int, int]] = written) -> bool:
            written.append((offset, length))
            result: bool = original(offset, length, fill, known_nonzero=known_nonzero)
            return result

        dst.write_direct = spy  # type: ignore[method-assign]
        for offset in range(0, SIZE, 3 * MiB + 4096):
            copy_chunk(src, dst, offset, min(3 * MiB + 4096, SIZE - offset),
                       write_behind=name == "chain")
        graph.delete(f"t{name}")
        assert written, name
        report = check(target)
        assert report.get("leaks", 0) == 0, report
        expected = source if name == "raw" else chain[-1]
        fmt = "raw" if name == "raw" else "qcow2"
        run("qemu-img", "compare", "-f", fmt, "-F", "qcow2", str(expected), str(target))


def test_detect_zeroes_target_gets_no_zero_data(graph: BlockGraph, tmp_path: Path) -> None:
    """A target with detect-zeroes (drive-backup's) takes nonzero data file to file
    and still turns a write step (16 MiB) of data that is all zero into zero
    clusters, as the buffered path's pwrite does."""
    source = tmp_path / "s.raw"
    rng = random.Random(2)
    with source.open("wb") as out:
        out.write(rng.randbytes(16 * MiB))
        out.write(bytes(16 * MiB))  # allocated, but zeroes
        out.write(bytes(4096) + rng.randbytes(16 * MiB - 4096))  # zero first, then not
    src = graph.add(raw_opts("s", source, **{"read-only": True}))
    target = make_qcow2(tmp_path / "t.qcow2", 48 * MiB)
    dst = graph.add(qcow2_opts("t", target, **{"detect-zeroes": "unmap", "discard": "unmap"}))
    # Block status calls it all data; the target node decides what is zero.
    assert copy_chunk(src, dst, 0, 48 * MiB, target_zeroed=True).copied == 48 * MiB
    graph.delete("t")
    check(target)
    run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(source), str(target))
    mapping = json.loads(run("qemu-img", "map", "--output=json", str(target)))
    data = [(extent["start"], extent["length"]) for extent in mapping if extent["data"]]
    assert data == [(0, 16 * MiB), (32 * MiB, 16 * MiB)], mapping


def test_refcount_table_grows(graph: BlockGraph, tmp_path: Path) -> None:
    """512 B clusters: one table cluster covers only 8 MiB of host clusters."""
    image = make_qcow2(tmp_path / "w.qcow2", 64 * MiB, cluster_size=512)
    before = info(image)
    assert before["virtual-size"] == 64 * MiB
    assert_same_as_qemu(graph, image, [("data", 0, 40 * MiB, 9), ("data", 50 * MiB, MiB, 3)],
                        tmp_path)


def test_writes_over_compressed_and_snapshot_clusters(graph: BlockGraph,
                                                      tmp_path: Path) -> None:
    """Compressed clusters and clusters shared with a snapshot are copied, not
    overwritten: the snapshot still reads as it was taken."""
    image, frozen = compressed_with_snapshot(tmp_path)
    assert_same_as_qemu(graph, image, random_writes(5, count=30), tmp_path)
    # Going back to the snapshot gives exactly what it held.
    run("qemu-img", "snapshot", "-a", "before", str(image))
    check(image)
    run("qemu-img", "compare", "-F", "raw", str(image), str(frozen))


def test_zero_writes_keep_images_sparse(graph: BlockGraph, tmp_path: Path) -> None:
    """Zeroing whole clusters makes zero clusters (v3), never written zeroes."""
    image = make_qcow2(tmp_path / "w.qcow2", SIZE)
    node = graph.add(qcow2_opts("w", image))
    node.write_zeroes(0, SIZE)
    node.flush()
    graph.delete("w")
    # No data cluster was allocated: header, refcounts, L1 and one L2 table.
    assert image.stat().st_size <= 5 * 64 * KiB
    mapping = run("qemu-img", "map", "--output=json", str(image))
    assert '"data": true' not in mapping
    check(image)


def test_writes_past_the_end_fail(graph: BlockGraph, tmp_path: Path) -> None:
    image = make_qcow2(tmp_path / "w.qcow2", MiB)
    node = graph.add(qcow2_opts("w", image))
    with pytest.raises(OSError, match="Input/output error"):
        node.pwrite(MiB - 1, b"ab")
    graph.delete("w")
    check(image)


def test_read_write_refusals(graph: BlockGraph, tmp_path: Path) -> None:
    """What qjobd does not write is refused at open with a clear error, and the
    image is left as it was."""
    narrow = make_qcow2(tmp_path / "rc8.qcow2", MiB, refcount_bits=8)
    extended = make_qcow2(tmp_path / "x.qcow2", MiB, extended_l2="on")
    dirty = make_qcow2(tmp_path / "d.qcow2", MiB, lazy_refcounts="on")
    qemu_io(dirty, "write -P 1 0 64k")
    poke(dirty, 72, (1).to_bytes(8, "big"))
    # A dirty image whose L2 table points past the end of the file.
    raw = dirty.read_bytes()
    l1 = int.from_bytes(raw[40:48], "big")
    l2 = int.from_bytes(raw[l1:l1 + 8], "big") & ((1 << 56) - 512)
    poke(dirty, l2, (0x8000_0000_0F00_0000).to_bytes(8, "big"))
    for image, words in ((narrow, "16-bit refcounts only"),
                         (extended, "extended L2 entries"),
                         (dirty, "Could not repair dirty image: Input/output error")):
        before = image.read_bytes()
        with pytest.raises(QMPError, match=words):
            graph.add(qcow2_opts("w", image))
        assert image.read_bytes() == before
        graph.add(qcow2_opts("r", image, **{"read-only": True}))
        graph.delete("r")
    assert len(graph) == 0


@pytest.mark.parametrize("with_snapshot", [False, True])
def test_dirty_images_are_repaired_when_opened_for_writing(
        graph: BlockGraph, tmp_path: Path, with_snapshot: bool) -> None:
    """As QEMU does: refcounts recounted, COPIED flags fixed, dirty bit cleared;
    the result reads as ``qemu-img check -r all`` makes it."""
    image = make_qcow2(tmp_path / "d.qcow2", 8 * MiB, lazy_refcounts="on")
    qemu_io(image, "write -P 1 0 2M")
    if with_snapshot:
        run("qemu-img", "snapshot", "-c", "s", str(image))
    # qemu-io dies by its own signal with the refcounts of its writes unwritten.
    crashed = subprocess.run(["qemu-io", "-c", "write -P 2 1M 3M", "-c", "write -z 6M 64k",
                              "-c", "sigraise 9", str(image)], capture_output=True)
    assert crashed.returncode == -signal.SIGKILL
    assert info(image)["dirty-flag"]
    assert check_status(image) == 2
    theirs = tmp_path / "theirs.qcow2"
    shutil.copy(image, theirs)
    subprocess.run(["qemu-img", "check", "-r", "all", str(theirs)], capture_output=True)
    node = graph.add(qcow2_opts("w", image))
    assert node.get_info() == (64 << 10, False)
    graph.delete("w")
    assert not info(image)["dirty-flag"]
    assert_same_snapshots(image, theirs, tmp_path)


def test_autoclear_bits_are_cleared_on_write(graph: BlockGraph, tmp_path: Path) -> None:
    """Bitmaps qjobd does not keep current must not be trusted by QEMU later."""
    image = make_qcow2(tmp_path / "w.qcow2", MiB)
    run("qemu-img", "bitmap", "--add", str(image), "b0")
    assert info(image)["format-specific"]["data"].get("bitmaps")
    graph.add(qcow2_opts("r", image, **{"read-only": True}))
    graph.delete("r")
    assert image.read_bytes()[88:96] == (1).to_bytes(8, "big")
    graph.add(qcow2_opts("w", image))
    graph.delete("w")
    assert image.read_bytes()[88:96] == bytes(8)
    assert not info(image)["format-specific"]["data"].get("bitmaps")


# Section: kill -9 while writing

WRITER = textwrap.dedent("""
    import os, sys
    from qjobd.block import BlockGraph, copy_chunk
    graph = BlockGraph()
    node = graph.add({"driver": "qcow2", "node-name": "w",
                      "file": {"driver": "file", "filename": sys.argv[1]}})
    step = int(sys.argv[2])
    copy = sys.argv[3] == "copy"
    if copy:
        # Each step's bytes go into a raw file first, then through the copy engine
        # (copy_file_range into new clusters, write_direct).
        source = sys.argv[1] + ".src"
        fd = os.open(source, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(fd, node.length())
        src = graph.add({"driver": "raw", "node-name": "s",
                         "file": {"driver": "file", "filename": source}})
    for index in range(node.length() // step):
        data = bytes([index % 250 + 1]) * step
        if copy:
            os.pwrite(fd, data, index * step)
            copy_chunk(src, node, index * step, step, write_behind=index % 2 == 0)
        else:
            node.pwrite(index * step, data)
        if index % 5 == 4:
            node.flush()
            print(index, flush=True)
""")


@pytest.mark.parametrize("how", ["pwrite", "copy"])
@pytest.mark.parametrize("cluster_size", [4 * KiB, 64 * KiB])
def test_kill_9_while_writing_leaves_a_consistent_image(tmp_path: Path, cluster_size: int,
                                                         how: str) -> None:
    rng = random.Random(cluster_size)
    for round_number in range(10):
        image = make_qcow2(tmp_path / f"k{round_number}.qcow2", 64 * MiB,
                           cluster_size=cluster_size)
        step = rng.choice([3000, 70 * KiB, 300 * KiB])
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(image), str(step), how],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        flushed = -1
        wanted = rng.randrange(1, 12)
        for line in process.stdout:
            flushed = int(line)
            if flushed // 5 >= wanted:
                break
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        assert_not_corrupt(image)
        # Every flushed write reads back (writes never overlap).
        for index in range(0, flushed + 1, max(1, flushed // 4)):
            qemu_io(image, f"read -P {index % 250 + 1} {index * step} {step}")


# Section: hostile images opened for writing


def l1_entry(image: Path) -> tuple[int, int]:
    """(offset of the L1 table, its first entry) of an image."""
    data = image.read_bytes()
    l1_offset = int.from_bytes(data[40:48], "big")
    return l1_offset, int.from_bytes(data[l1_offset:l1_offset + 8], "big")


def test_writes_never_land_on_metadata(graph: BlockGraph, tmp_path: Path) -> None:
    """An L2 entry aimed at the refcount table or at the L1 table, or an L1 entry
    aimed at the refcount table (refused at open), is refused with EIO and
    overwrites nothing."""
    for target in ("reftable", "l1"):
        image = make_qcow2(tmp_path / f"{target}.qcow2", 4 * MiB)
        qemu_io(image, "write -P 1 0 64k")
        l1_offset, entry = l1_entry(image)
        l2_offset = entry & 0x00FF_FFFF_FFFF_FE00
        # qemu-img puts the refcount table in cluster 1.
        aim = 64 * KiB if target == "reftable" else l1_offset
        poke(image, l2_offset, ((1 << 63) | aim).to_bytes(8, "big"))
        before = image.read_bytes()
        node = graph.add(qcow2_opts("w", image))
        with pytest.raises(OSError, match="overwrite qcow2 metadata"):
            node.pwrite(0, b"x" * 4096)
        graph.delete("w")
        assert image.read_bytes()[:l2_offset] == before[:l2_offset]
    image = make_qcow2(tmp_path / "l2.qcow2", 4 * MiB)
    qemu_io(image, "write -P 1 0 64k")
    l1_offset, entry = l1_entry(image)
    # The L2 table "is" the refcount table.
    poke(image, l1_offset, ((1 << 63) | 64 * KiB).to_bytes(8, "big"))
    before = image.read_bytes()
    # Found when opening for writing already: refused, nothing written.
    with pytest.raises(QMPError, match="overlap other metadata"):
        graph.add(qcow2_opts("w", image))
    assert image.read_bytes() == before
    assert len(graph) == 0


def test_allocation_starts_past_metadata_beyond_the_end(graph: BlockGraph,
                                                        tmp_path: Path) -> None:
    """An L1 table placed past the end of the file (reads as zeroes, as QEMU
    accepts) is not overwritten by new data clusters."""
    image = make_qcow2(tmp_path / "w.qcow2", 4 * MiB)
    far = 64 << 20
    poke(image, 40, far.to_bytes(8, "big"))
    node = graph.add(qcow2_opts("w", image))
    node.pwrite(0, b"\x07" * (8 * 64 * KiB))
    node.flush()
    graph.delete("w")
    node = graph.add(qcow2_opts("r", image, **{"read-only": True}))
    assert node.pread(0, 8 * 64 * KiB) == b"\x07" * (8 * 64 * KiB)
    graph.delete("r")


@pytest.mark.parametrize("cluster_size", [512, 64 << 10])
def test_growing_keeps_data_and_snapshots(graph: BlockGraph, tmp_path: Path,
                                          cluster_size: int) -> None:
    """Growth past what the L1 table covers (commit grows a smaller base so): the
    old data and the snapshots stay, the new end reads as zeroes."""
    image = make_qcow2(tmp_path / "g.qcow2", MiB, cluster_size=cluster_size)
    qemu_io(image, "write -P 1 0 512k", f"write -P 2 {MiB - 4096} 4096")
    run("qemu-img", "snapshot", "-c", "s", str(image))
    theirs = tmp_path / "theirs.qcow2"
    shutil.copy(image, theirs)
    run("qemu-img", "resize", "-q", str(theirs), str(300 * MiB))
    node = graph.add(qcow2_opts("w", image))
    node.grow(300 * MiB)
    assert node.length() == 300 * MiB
    node.pwrite(299 * MiB, b"\x03" * 8192)
    graph.delete("w")
    qemu_io(theirs, f"write -P 3 {299 * MiB} 8192")
    report = check(image)
    assert report.get("leaks", 0) == 0, report
    assert info(image)["virtual-size"] == 300 * MiB
    run("qemu-img", "compare", str(image), str(theirs))
    v2 = make_qcow2(tmp_path / "v2.qcow2", MiB, compat="0.10")
    run("qemu-img", "snapshot", "-c", "s", str(v2))
    node = graph.add(qcow2_opts("v2", v2))
    with pytest.raises(QMPError, match="Can't resize a v2 image which has snapshots"):
        node.grow(2 * MiB)
    graph.delete("v2")
    check(v2)


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on another filesystem than ``tmp_path`` (tmpfs): copy_file_range
    between the two fails with EXDEV."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to copy from")
    directory = Path(tempfile.mkdtemp(dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def test_copy_falls_back_when_the_kernel_refuses(graph: BlockGraph, tmp_path: Path,
                                                 other_filesystem: Path) -> None:
    """copy_file_range across filesystems (EXDEV): found before the target allocates
    anything, and the buffered path writes the data instead (the image holds its
    data once, not a freed attempt besides)."""
    source = make_image(other_filesystem / "s.raw", SIZE,
                        [(100, 3 * MiB), (9 * MiB, 5 * MiB + 7)], seed=5)
    base = make_qcow2(tmp_path / "base.qcow2", SIZE)
    qemu_io(base, "write -P 9 0 16M")
    target = make_qcow2(tmp_path / "t.qcow2", SIZE, backing=base, cluster_size=4096)
    src = graph.add(raw_opts("s", source, **{"read-only": True}))
    dst = graph.add(qcow2_opts("t", target))
    for offset in range(0, SIZE, 2 * MiB + 512):
        copy_chunk(src, dst, offset, min(2 * MiB + 512, SIZE - offset))
    graph.delete("t")
    report = check(target)
    assert report.get("leaks", 0) == 0, report
    run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(source), str(target))
    # The written 4 KiB clusters, and a little metadata: nothing allocated twice.
    assert report["image-end-offset"] <= 9 * MiB, report

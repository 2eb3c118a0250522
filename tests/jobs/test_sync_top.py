"""``sync: top`` backups and mirrors on qcow2 backing chains, and drive-backup's and
drive-mirror's ``mode``: qjobd against qemu-storage-daemon 7.2.

The same exchange runs on both daemons over a chain l0 <- l1 <- l2 <- l3 whose top
holds data, a zero cluster, a cluster of written zeroes, a compressed cluster,
partly written clusters and holes.  Replies, job statuses, events and the graph
(node by node, generated names masked) must be the same; so must the targets:
``qemu-img compare``, their backing chains as ``qemu-img info --backing-chain``
names them, their allocation as ``qemu-img map`` shows it (host offsets aside:
QEMU's depend on the order its parallel requests land), and ``qemu-img check``
must find qjobd's clean.

One difference is known and allowed: where a target without any backing file
(a ``sync: full`` one) reads zeroes, QEMU writes zero clusters and qjobd's qcow2
layer leaves clusters unallocated; both read as zeroes and neither holds data.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.client import Client, mask_node_names, without_drain_pairs
from helpers.daemons import kill_9_after, on_both_daemons, qsd_available
from helpers.engine import Engine
from helpers.images import MiB
from helpers.qcow2 import (
    assert_not_corrupt,
    check,
    make_chain,
    make_qcow2,
    qcow2_opts,
    qemu_io,
    raw_content,
    run,
)

from qjobd.block import BlockGraph, EdgeKind
from qjobd.jobdrivers.backup import ChunkMap
from qjobd.jobdrivers.blockjob import BlockJobOptions
from qjobd.jobdrivers.mirror import MirrorOptions, setup_mirror

needs_qsd = pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")

SIZE = 8 * MiB


def chain(directory: Path) -> list[Path]:
    """l0 <- l1 <- l2 <- l3 (relative backing names), the top with every kind of
    cluster."""
    images = make_chain(directory, 3, size=SIZE)
    qemu_io(images[3], "write -z 0 64k", "write -P 9 1M 64k", "write -P 0 2M 64k",
            "write -c -P 5 6M 64k", "write -P 6 7M 4k")
    return images


def graph(c: Client) -> list[tuple[Any, ...]]:
    """What query-named-block-nodes says about each node's identity and chain."""
    rows = []
    for node in c.ok("query-named-block-nodes", {"flat": True}):
        image = node["image"]
        rows.append((mask_node_names(node["node-name"]), node["drv"], node["file"],
                     node["ro"], node.get("backing_file"), image.get("backing-filename"),
                     image.get("full-backing-filename"),
                     image.get("backing-filename-format"), node["detect_zeroes"]))
    return rows


class Session:
    """A client whose replies, graph listings and job statuses are kept as lines."""

    def __init__(self, client: Client, directory: Path) -> None:
        self.c = client
        self.directory = str(directory)
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(mask_node_names(text.replace(self.directory, "D")))

    def raw(self, execute: str, arguments: dict[str, Any] | None = None) -> None:
        self.note(f"{execute} -> {self.c.raw(execute, arguments)}")

    def graph(self) -> None:
        self.note(repr(graph(self.c)))

    def finish(self, jobs: list[str]) -> list[str]:
        for job in jobs:
            self.note(f"{job}: {without_drain_pairs(self.c.statuses(job))}")
        self.note(repr([(e["event"], e.get("data")) for e in self.c.events
                        if e["event"] != "JOB_STATUS_CHANGE"]))
        return self.lines


def backup_exchange(socket: Path, directory: Path) -> list[str]:
    images = chain(directory)
    make_qcow2(directory / "ex.qcow2", SIZE, backing=Path("l2.qcow2"))
    make_qcow2(directory / "bm.qcow2", SIZE, backing=Path("l2.qcow2"), cluster_size="256k")
    make_qcow2(directory / "plain.qcow2", SIZE)
    alone = make_qcow2(directory / "alone.qcow2", SIZE)
    qemu_io(alone, "write -P 7 0 1M", "write -z 2M 1M")
    d = directory
    with Client(socket) as c:
        s = Session(c, directory)
        c.ok("blockdev-add", qcow2_opts("top", images[3]))
        for job, extra in (("new", {"format": "qcow2", "target": str(d / "new.qcow2")}),
                           ("ex", {"mode": "existing", "target": str(d / "ex.qcow2")})):
            s.raw("drive-backup", {"job-id": job, "device": "top", "sync": "top",
                                   "auto-finalize": False, **extra})
            c.wait_status(job, "pending")
            s.graph()
            s.raw("query-jobs")
            s.raw("job-finalize", {"id": job})
            c.wait_status(job, "null")
        for arguments in (
            {"mode": "existing", "target": str(d / "missing.qcow2")},
            {"mode": "relative", "target": str(d / "r.qcow2"), "format": "qcow2"},
            {"format": "raw", "target": str(d / "r.raw")},
            {"format": "qcow2", "target": str(images[2])},
            {"format": "nope", "target": str(d / "r.qcow2")},
        ):
            s.raw("drive-backup", {"job-id": "x", "device": "top", "sync": "top",
                                   **arguments})
        s.raw("blockdev-add", qcow2_opts("bm", d / "bm.qcow2"))
        s.raw("blockdev-backup", {"job-id": "bm", "device": "top", "target": "bm",
                                  "sync": "top", "auto-dismiss": False})
        c.wait_status("bm", "concluded")
        s.raw("query-jobs")
        s.raw("job-dismiss", {"id": "bm"})
        # Without a backing file: drive-backup copies everything, blockdev-backup
        # what the image allocates.
        s.raw("blockdev-add", qcow2_opts("alone", alone))
        s.raw("blockdev-add", qcow2_opts("plain", d / "plain.qcow2"))
        s.raw("drive-backup", {"job-id": "af", "device": "alone", "sync": "top",
                               "format": "qcow2", "target": str(d / "af.qcow2")})
        c.wait_status("af", "null")
        s.raw("blockdev-backup", {"job-id": "at", "device": "alone", "target": "plain",
                                  "sync": "top"})
        c.wait_status("at", "null")
        s.graph()
        return s.finish(["new", "ex", "bm", "af", "at"])


def mirror_exchange(socket: Path, directory: Path) -> list[str]:
    images = chain(directory)
    make_qcow2(directory / "ex.qcow2", SIZE, backing=Path("l2.qcow2"))
    make_qcow2(directory / "bm.qcow2", SIZE, backing=Path("l2.qcow2"))
    d = directory
    with Client(socket) as c:
        s = Session(c, directory)
        c.ok("blockdev-add", qcow2_opts("top", images[3]))
        for job, arguments, ending in (
            ("mt", {"sync": "top", "format": "qcow2", "target": str(d / "mt.qcow2"),
                    "node-name": "mt"}, "block-job-complete"),
            ("mf", {"sync": "full", "format": "qcow2", "target": str(d / "mf.qcow2")},
             "block-job-cancel"),
            ("ex", {"sync": "top", "mode": "existing", "target": str(d / "ex.qcow2")},
             "block-job-complete"),
            ("mn", {"sync": "none", "format": "qcow2", "target": str(d / "mn.qcow2")},
             "block-job-cancel"),
        ):
            s.raw("drive-mirror", {"job-id": job, "device": "top", **arguments})
            c.wait_event("BLOCK_JOB_READY", job)
            s.graph()
            s.raw("query-block-jobs")
            s.raw(ending, {"device": job})
            c.wait_status(job, "null")
        s.graph()
        for arguments in (
            {"sync": "top", "mode": "existing", "target": str(d / "missing.qcow2")},
            {"sync": "top", "format": "raw", "target": str(d / "r.raw")},
            {"sync": "top", "format": "qcow2", "target": str(images[2])},
            {"sync": "top", "mode": "relative", "target": str(d / "r.qcow2")},
        ):
            s.raw("drive-mirror", {"job-id": "x", "device": "top", **arguments})
        s.raw("blockdev-add", qcow2_opts("bm", d / "bm.qcow2"))
        s.raw("blockdev-mirror", {"job-id": "bm", "device": "top", "target": "bm",
                                  "sync": "top"})
        c.wait_event("BLOCK_JOB_READY", "bm")
        s.raw("query-block-jobs")
        s.raw("job-complete", {"id": "bm"})
        c.wait_status("bm", "null")
        s.graph()
        # blockdev-mirror's full sync zeroes a target that can unmap, then copies
        # what the chain allocates; one that cannot gets everything copied.
        for name, discard in (("zu", "unmap"), ("zi", "ignore")):
            make_qcow2(d / f"{name}.qcow2", SIZE)
            c.ok("blockdev-add", qcow2_opts(name, d / f"{name}.qcow2", discard=discard))
            s.raw("blockdev-mirror", {"job-id": name, "device": "top", "target": name,
                                      "sync": "full"})
            c.wait_event("BLOCK_JOB_READY", name)
            s.raw("query-block-jobs")
            s.raw("block-job-cancel", {"device": name})
            c.wait_status(name, "null")
            c.ok("blockdev-del", {"node-name": name})
        # A target in the source's own chain, and a filter above one.
        b0 = make_qcow2(d / "b0.qcow2", MiB)
        b1 = make_qcow2(d / "b1.qcow2", MiB, backing=b0)
        c.ok("blockdev-add", qcow2_opts("b0", b0, **{"read-only": True}))
        c.ok("blockdev-add", qcow2_opts("b1", b1, backing="b0"))
        c.ok("blockdev-add", {"driver": "blkdebug", "node-name": "dbg", "image": "b0"})
        for target in ("dbg", "b0"):
            s.raw("blockdev-mirror", {"job-id": "in", "device": "b1", "target": target,
                                      "sync": "top"})
        return s.finish(["mt", "mf", "ex", "mn", "bm", "zu", "zi", "in"])


def assert_same_lines(theirs: list[str], ours: list[str]) -> None:
    for index, (mine, expected) in enumerate(zip(ours, theirs, strict=True)):
        assert mine == expected, index


def backing_chain(image: Path) -> list[tuple[Any, ...]]:
    """The chain as qemu-img names it: file, format, backing names, size."""
    facts = json.loads(run("qemu-img", "info", "--output=json", "--backing-chain", "-U",
                           str(image)))
    directory = str(image.parent)
    return [tuple(str(layer.get(key)).replace(directory, "D") for key in (
        "filename", "format", "backing-filename", "full-backing-filename",
        "backing-filename-format", "virtual-size", "cluster-size")) for layer in facts]


def allocation(image: Path) -> list[dict[str, Any]]:
    """qemu-img map without host offsets, runs of the same kind merged; zeroes of an
    image with no backing file count the same whether allocated or not."""
    has_backing = "backing-filename" in json.loads(
        run("qemu-img", "info", "--output=json", "-U", str(image)))
    merged: list[dict[str, Any]] = []
    for entry in json.loads(run("qemu-img", "map", "--output=json", "-U", str(image))):
        entry.pop("offset", None)
        if not has_backing and entry["zero"] and not entry["data"]:
            entry["present"] = None
        last = merged[-1] if merged else None
        if last is not None and {k: v for k, v in last.items() if k not in ("start", "length")} \
                == {k: v for k, v in entry.items() if k not in ("start", "length")}:
            last["length"] += entry["length"]
        else:
            merged.append(entry)
    return merged


def assert_same_images(directory: Path, names: list[str]) -> None:
    for name in names:
        theirs, ours = directory / "qsd" / name, directory / "qjobd" / name
        check(ours)
        run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(theirs), str(ours))
        assert backing_chain(ours) == backing_chain(theirs), name
        assert allocation(ours) == allocation(theirs), name


@needs_qsd
def test_backups_like_qsd(tmp_path: Path) -> None:
    theirs, ours = on_both_daemons(tmp_path, backup_exchange)
    assert_same_lines(theirs, ours)
    assert_same_images(tmp_path, ["new.qcow2", "ex.qcow2", "bm.qcow2", "af.qcow2",
                                  "plain.qcow2"])
    # The sources are as they were.
    assert_same_images(tmp_path, ["l3.qcow2", "l2.qcow2"])


@needs_qsd
def test_mirrors_like_qsd(tmp_path: Path) -> None:
    theirs, ours = on_both_daemons(tmp_path, mirror_exchange)
    assert_same_lines(theirs, ours)
    assert_same_images(tmp_path, ["mt.qcow2", "mf.qcow2", "ex.qcow2", "mn.qcow2",
                                  "bm.qcow2", "zu.qcow2", "zi.qcow2"])


def test_top_backup_names_the_backing_file_and_stays_sparse(qjobd_socket: Path,
                                                             tmp_path: Path) -> None:
    """Without QSD to compare with: the target holds only the top's clusters and
    reads like the source through the same backing chain."""
    images = chain(tmp_path)
    target = tmp_path / "t.qcow2"
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("top", images[3]))
        c.ok("drive-backup", {"job-id": "b", "device": "top", "sync": "top",
                              "format": "qcow2", "target": str(target)})
        c.wait_status("b", "null")
    check(target)
    facts = json.loads(run("qemu-img", "info", "--output=json", str(target)))
    assert (facts["backing-filename"], facts["backing-filename-format"]) == (
        str(images[2]), "qcow2")
    run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(images[3]), str(target))
    own = [e for e in json.loads(run("qemu-img", "map", "--output=json", str(target)))
           if e["depth"] == 0]
    top = [e for e in json.loads(run("qemu-img", "map", "--output=json", str(images[3])))
           if e["depth"] == 0]
    # Each cluster the top allocates, and nothing else; zeroes stay zero clusters.
    assert sum(e["length"] for e in own) == sum(e["length"] for e in top)
    assert sum(e["length"] for e in own if e["data"]) <= sum(
        e["length"] for e in top if e["data"])


def test_chunk_map_restricted_to_allocated_clusters() -> None:
    """What sync=top leaves of a backup's chunks: the clusters the ranges touch."""
    chunks = ChunkMap(3 * MiB + 1000, chunk_size=MiB, cluster_size=64 << 10)
    chunks.restrict([(0, 1), (MiB + 100, 70000), (3 * MiB, 10)])
    assert chunks.total == 4 * (64 << 10)
    assert [chunks.weight(i) for i in range(chunks.count)] == [
        64 << 10, 2 * (64 << 10), 0, 64 << 10]
    assert chunks.extents(0) == [(0, 64 << 10)]
    assert chunks.extents(1) == [(MiB, 128 << 10)]
    assert chunks.extents(3) == [(3 * MiB, 1000)]
    assert [chunks.is_done(i) for i in range(chunks.count)] == [False, False, True, False]


def test_kill_9_during_top_jobs(tmp_path: Path) -> None:
    """kill -9 in the middle of sync=top backups and mirrors: no image of the
    chain nor the target is ever corrupt, and the chain reads as before."""
    rng = random.Random(4)
    for round_number in range(6):
        directory = tmp_path / f"r{round_number}"
        directory.mkdir()
        images = chain(directory)
        before = raw_content(images[3], directory / "before.raw")
        target = directory / "t.qcow2"
        command = "drive-backup" if round_number % 2 else "drive-mirror"

        def actions(c: Client, top: Path = images[3], target: Path = target,
                    command: str = command) -> None:
            c.ok("blockdev-add", qcow2_opts("top", top))
            c.ok(command, {"job-id": "j", "device": "top", "sync": "top",
                           "format": "qcow2", "target": str(target), "speed": MiB})
            c.settle(rng.uniform(0.0, 0.4))

        kill_9_after(directory / "d.sock", actions)
        assert_not_corrupt(*images, target)
        assert raw_content(images[3], directory / "after.raw") == before


# Section: the pivot, in process


def _options(source: Any, target: Any, **extra: Any) -> MirrorOptions:
    return MirrorOptions(common=BlockJobOptions(job_id="m"), source=source, target=target,
                         implicit_target=True, **extra)


async def _complete(engine: Engine, options: MirrorOptions) -> None:
    job = setup_mirror(engine.graph, engine.manager, options)
    engine.manager.start(job)
    await engine.events.wait_status("m", "ready")
    job.user_complete()
    await engine.events.wait_status("m", "null")


@pytest.mark.parametrize("mode", ["source", "open"])
async def test_completed_top_mirror_puts_the_target_on_the_backing_chain(
    engine: Engine, tmp_path: Path, mode: str
) -> None:
    """What QSD cannot show without exports: the source's user reads the target,
    whose backing file is the source's (absolute-paths) or the one its header names
    (existing), and the target reads as the source did."""
    images = chain(tmp_path)
    target_path = make_qcow2(tmp_path / "t.qcow2", SIZE, backing=images[2])
    graph = engine.graph
    source = graph.add(qcow2_opts("top", images[3]))
    before = await trio.to_thread.run_sync(source.pread, 0, SIZE)
    user = graph.acquire(source, "block device 'disk'", True, kind=EdgeKind.BACKEND)
    target = graph.open_implicit(qcow2_opts(None, target_path, backing=None))
    assert target.backing is None
    await _complete(engine, _options(source, target, sync="top", backing_mode=mode))
    assert user.node is target
    backing = target.backing
    assert backing is not None
    assert backing.filename == str(images[2])
    if mode == "source":
        assert backing is source.backing  # the source's own node
    else:
        assert backing is not source.backing  # opened from the target's header
        assert backing.read_only
    assert not target.filename.startswith("json:")
    assert await trio.to_thread.run_sync(target.pread, 0, SIZE) == before
    user.release()


async def test_completed_none_mirror_keeps_the_source_below_the_target(
    engine: Engine, tmp_path: Path
) -> None:
    images = chain(tmp_path)
    graph = engine.graph
    source = graph.add(qcow2_opts("top", images[3]))
    target_path = make_qcow2(tmp_path / "n.qcow2", SIZE, backing=images[3])
    user = graph.acquire(source, "block device 'disk'", True, kind=EdgeKind.BACKEND)
    target = graph.open_implicit(qcow2_opts(None, target_path, backing=None))
    await _complete(engine, _options(source, target, sync="none", backing_mode="source"))
    # The user moved to the target; the target's backing edge still is the source.
    assert user.node is target
    assert target.backing is source
    assert [edge.parent for edge in source.parents if edge.kind is EdgeKind.NODE] == [target]
    user.release()


def test_zero_writes_into_an_image_opened_without_its_backing_file(tmp_path: Path) -> None:
    """Zeroes written while the backing file is not open must still hide it later."""
    base = make_qcow2(tmp_path / "base.qcow2", MiB)
    qemu_io(base, "write -P 3 0 1M")
    overlay = make_qcow2(tmp_path / "o.qcow2", MiB, backing=base)
    graph = BlockGraph()
    node = graph.add(qcow2_opts("o", overlay, backing=None))
    node.write_zeroes(0, 256 << 10)
    graph.close_all()
    check(overlay)
    data = (tmp_path / "o.raw")
    run("qemu-img", "convert", "-O", "raw", str(overlay), str(data))
    content = data.read_bytes()
    assert content[:256 << 10] == bytes(256 << 10)
    assert content[256 << 10:] == b"\x03" * (MiB - (256 << 10))



# Section: backing names that do not fit


NAME_CASES = [(1023, 65536), (1024, 65536), (300, 512), (400, 512)]


def create_exchange(socket: Path, directory: Path) -> list[str]:
    """blockdev-create with backing names at and past what a header can hold."""
    lines = []
    with Client(socket) as c:
        for index, (length, cluster) in enumerate(NAME_CASES):
            path = directory / f"n{index}.qcow2"
            path.write_bytes(b"")
            c.ok("blockdev-add", {"driver": "file", "node-name": f"f{index}",
                                  "filename": str(path)})
            c.ok("blockdev-create", {"job-id": f"c{index}", "options": {
                "driver": "qcow2", "file": f"f{index}", "size": MiB,
                "cluster-size": cluster, "backing-file": "b" * length,
                "backing-fmt": "raw"}})
            c.wait_status(f"c{index}", "concluded")
            lines.append(c.raw("query-jobs"))
            c.ok("job-dismiss", {"id": f"c{index}"})
    return lines


@needs_qsd
def test_backing_names_too_long_for_the_header_like_qsd(tmp_path: Path) -> None:
    """QEMU creates the image, then fails to name the backing file: the job fails
    and the image stays valid without one (never a header QEMU cannot open)."""
    theirs, ours = on_both_daemons(tmp_path, create_exchange)
    assert_same_lines(theirs, ours)
    for index in range(len(NAME_CASES)):
        mine = (tmp_path / "qjobd" / f"n{index}.qcow2").read_bytes()
        expected = (tmp_path / "qsd" / f"n{index}.qcow2").read_bytes()
        cluster = NAME_CASES[index][1]
        assert mine[:cluster] == expected[:cluster], index  # the header, byte for byte
        if "error" in theirs[index]:
            check(tmp_path / "qjobd" / f"n{index}.qcow2")

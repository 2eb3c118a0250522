"""External snapshots: qjobd against qemu-storage-daemon 7.2, reply for reply.

The same exchanges run on both daemons (``on_both_daemons``): every reply line must
be identical once the directory and the digits of generated node names are
masked, jobs must pass through the same statuses (QSD's drain pauses aside), and
the images both leave must agree under qemu-img.  QSD takes file locks, so no
exchange opens one image file twice.  Where qjobd made an image itself, its
allocation differs from QEMU's, and a file's allocated size read right after writing
depends on the filesystem's timing, so ``actual-size`` is masked in every exchange.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client, mask_node_names, without_drain_pairs
from helpers.daemons import on_both_daemons, qsd_available
from helpers.images import MiB
from helpers.qcow2 import check, make_qcow2, qcow2_opts, qemu_io, run

pytestmark = pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")

SIZE = 4 * MiB
_ACTUAL_SIZE = re.compile(r'"actual-size": \d+')


class Log:
    """A client whose replies are kept, normalized, in ``lines``."""

    def __init__(self, client: Client, directory: Path, *, mask_sizes: bool = True) -> None:
        self.client = client
        self.directory = str(directory)
        self.mask_sizes = mask_sizes
        self.lines: list[str] = []

    def __call__(self, execute: str, arguments: dict[str, Any] | None = None) -> Any:
        line = self.client.raw(execute, arguments)
        text = mask_node_names(line.replace(self.directory, "D"))
        if self.mask_sizes:
            text = _ACTUAL_SIZE.sub('"actual-size": N', text)
        self.lines.append(f"{execute}: {text}")
        return json.loads(line)

    def queries(self) -> None:
        self("query-named-block-nodes", {"flat": True})
        self("query-named-block-nodes")


def naming(image: Path, backing: Path) -> Path:
    """A new qcow2 ``image`` whose header names ``backing`` (which need not exist)."""
    make_qcow2(image, SIZE)
    run("qemu-img", "rebase", "-u", "-b", str(backing), "-F", "qcow2", str(image))
    return image


def files(directory: Path) -> list[str]:
    """The images in ``directory``: not the daemon's socket or qjobd's state next to it."""
    return sorted(name for name in os.listdir(directory)
                  if not name.endswith((".sock", ".sock.state")))


def assert_same(theirs: list[str], ours: list[str]) -> None:
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine == expected


def file_ref(directory: Path, name: str) -> dict[str, Any]:
    return {"driver": "file", "filename": str(directory / name)}


def snapshot_sync_errors(socket: Path, directory: Path) -> tuple[list[str], list[str]]:
    make_qcow2(directory / "base.qcow2", SIZE)
    naming(directory / "ovb.qcow2", directory / "elsewhere.qcow2")
    (directory / "r.raw").write_bytes(bytes(SIZE))
    d = str(directory)
    with Client(socket) as c:
        log = Log(c, directory)
        log("blockdev-add", qcow2_opts("base", directory / "base.qcow2"))
        log("blockdev-add", {"driver": "blkdebug", "node-name": "dbg", "image": {
            "driver": "null-co", "size": SIZE}})
        for arguments in [
            {"snapshot-file": f"{d}/x"},
            {"device": "base", "snapshot-file": f"{d}/x"},
            {"node-name": "nope", "snapshot-file": f"{d}/x", "snapshot-node-name": "x"},
            {"node-name": "base", "snapshot-file": f"{d}/x"},
            {"node-name": "base", "snapshot-file": f"{d}/x", "snapshot-node-name": "base"},
            {"node-name": "base", "snapshot-file": f"{d}/x", "snapshot-node-name": "dbg"},
            {"device": "nope", "node-name": "base", "snapshot-file": f"{d}/x2",
             "snapshot-node-name": "x2", "format": "nosuch"},
            {"node-name": "base", "snapshot-file": f"{d}/x3", "snapshot-node-name": "x3",
             "format": "raw"},
            {"node-name": "base", "snapshot-file": f"{d}/x4", "snapshot-node-name": "x4",
             "format": "null-co"},
            {"node-name": "base", "snapshot-file": f"{d}/x5", "snapshot-node-name": "x5",
             "format": "file"},
            {"node-name": "base", "snapshot-file": f"{d}/missing", "snapshot-node-name": "x6",
             "mode": "existing"},
            {"node-name": "base", "snapshot-file": f"{d}/missing", "snapshot-node-name": "x7",
             "mode": "existing", "format": "file"},
            {"node-name": "base", "snapshot-file": f"{d}/r.raw", "snapshot-node-name": "x8",
             "mode": "existing", "format": "raw"},
            {"node-name": "base", "snapshot-file": f"{d}/r.raw", "snapshot-node-name": "x9",
             "mode": "existing"},
            {"node-name": "base", "snapshot-file": f"{d}/base.qcow2",
             "snapshot-node-name": "x10"},
            {"node-name": "base", "snapshot-file": f"{d}/nodir/x11",
             "snapshot-node-name": "x11"},
            {"node-name": "base", "snapshot-file": "", "snapshot-node-name": "x12"},
            {"node-name": "base", "snapshot-file": f"{d}/x13", "snapshot-node-name": "bad name"},
            {"node-name": "base", "snapshot-file": f"{d}/x14", "snapshot-node-name": "a" * 40},
            {"node-name": "base", "snapshot-file": f"{d}/x15", "snapshot-node-name": "#block1"},
            {"node-name": "base", "snapshot-file": f"{d}/x16", "snapshot-node-name": "x16",
             "mode": "bogus"},
            {"node-name": "base", "snapshot-file": f"{d}/x17"},
            {"node-name": "base", "snapshot-file": f"{d}/x18", "snapshot-node-name": "x18",
             "unknown": 1},
        ]:
            log("blockdev-snapshot-sync", arguments)
        # Nothing changed: base is still writable and has no overlay.
        log.queries()
    return log.lines, files(directory)


def test_snapshot_sync_errors_same_as_qsd(tmp_path: Path) -> None:
    (theirs, their_files), (ours, our_files) = on_both_daemons(tmp_path, snapshot_sync_errors)
    assert_same(theirs, ours)
    # Images made before a later check failed stay on disk in both.
    assert our_files == their_files
    for name in ("x13", "x14", "x15"):
        check(tmp_path / "qjobd" / name)


def snapshot_errors(socket: Path, directory: Path) -> list[str]:
    for name in ("base", "ov", "dq", "small", "m", "mt", "b2", "b3", "self"):
        make_qcow2(directory / f"{name}.qcow2", SIZE if name != "small" else MiB)
    naming(directory / "ovb.qcow2", directory / "gone.qcow2")
    qemu_io(directory / "m.qcow2", "write -P 3 0 4M")
    (directory / "r.raw").write_bytes(bytes(SIZE))
    (directory / "f.raw").write_bytes(bytes(SIZE))
    with Client(socket) as c:
        log = Log(c, directory)

        def add(name: str, **extra: Any) -> None:
            log("blockdev-add", qcow2_opts(name, directory / f"{name}.qcow2", **extra))

        add("base", backing=None)
        add("ov", backing=None)
        add("ovb", backing=None)
        add("small", backing=None)
        add("m", backing=None)
        add("mt", backing=None)
        add("b2", backing=None)
        add("b3", backing=None)
        add("self", backing=None)
        log("blockdev-add", {"driver": "raw", "node-name": "r",
                             "file": file_ref(directory, "r.raw")})
        log("blockdev-add", {"driver": "file", "node-name": "f",
                             "filename": str(directory / "f.raw")})
        log("blockdev-add", {"driver": "blkdebug", "node-name": "dbg", "image": qcow2_opts(
            "dq", directory / "dq.qcow2", backing=None)})
        for node, overlay in [
            ("nope", "ov"), ("base", "nope"), ("base", "r"), ("base", "f"), ("base", "dbg"),
            ("self", "self"),
        ]:
            log("blockdev-snapshot", {"node": node, "overlay": overlay})
        # An overlay that names a backing file of its own, opened without it.
        log("blockdev-snapshot", {"node": "base", "overlay": "ovb"})
        log("blockdev-snapshot", {"node": "base", "overlay": "ov"})
        log("blockdev-snapshot", {"node": "base", "overlay": "dq"})
        log("blockdev-snapshot", {"node": "dbg", "overlay": "dq"})
        log("blockdev-snapshot", {"node": "f", "overlay": "small"})
        log("blockdev-snapshot", {"node": "ovb", "overlay": "base"})
        log("blockdev-snapshot", {"node": "ov", "overlay": "base"})
        log("query-named-block-nodes", {"flat": True})
        # A running mirror reads its source (in use) and only writes its target.
        c.ok("blockdev-mirror", {"job-id": "mm", "device": "m", "target": "mt",
                                 "sync": "full", "speed": MiB})
        log("blockdev-snapshot", {"node": "b2", "overlay": "m"})
        log("blockdev-snapshot", {"node": "m", "overlay": "b2"})
        log("blockdev-snapshot", {"node": "mt", "overlay": "b2"})
        log("blockdev-snapshot", {"node": "b3", "overlay": "mt"})
        c.ok("block-job-cancel", {"device": "mm", "force": True})
        c.wait_status("mm", "null")
        # How much the cancelled mirror had written differs; its target goes.
        log("blockdev-del", {"node-name": "mt"})
        log("blockdev-del", {"node-name": "ovb"})
        log("blockdev-del", {"node-name": "base"})
        log("blockdev-del", {"node-name": "ov"})
        log("blockdev-del", {"node-name": "base"})
        log("blockdev-del", {"node-name": "small"})
        log.queries()
    return log.lines


def test_snapshot_errors_and_graphs_same_as_qsd(tmp_path: Path) -> None:
    theirs, ours = on_both_daemons(tmp_path, snapshot_errors)
    assert_same(theirs, ours)


def snapshot_sync_graphs(socket: Path, directory: Path) -> list[str]:
    for name in ("lone", "ro", "img", "flags", "ex"):
        image = make_qcow2(directory / f"{name}.qcow2", SIZE)
        qemu_io(image, "write -P 5 0 1M")
    naming(directory / "ex.over", directory / "named.qcow2")
    d = str(directory)
    with Client(socket) as c:
        log = Log(c, directory, mask_sizes=True)
        log("blockdev-add", qcow2_opts("lone", directory / "lone.qcow2"))
        log("blockdev-add", qcow2_opts("ro", directory / "ro.qcow2", **{"read-only": True}))
        log("blockdev-add", {"driver": "raw", "node-name": "rodisk", "file": "ro",
                             "read-only": True})
        log("blockdev-add", qcow2_opts("img", directory / "img.qcow2"))
        log("blockdev-add", {"driver": "raw", "node-name": "disk", "file": "img"})
        log("blockdev-add", qcow2_opts("flags", directory / "flags.qcow2", discard="unmap",
                                       cache={"no-flush": True}))
        log("blockdev-add", {"driver": "raw", "node-name": "fdisk", "file": "flags"})
        log("blockdev-add", qcow2_opts("ex", directory / "ex.qcow2"))
        log("blockdev-add", {"driver": "raw", "node-name": "exdisk", "file": "ex"})
        # Nothing uses lone: its overlay closes at once, lone goes read-only.
        log("blockdev-snapshot-sync", {"node-name": "lone", "snapshot-file": f"{d}/lone.over",
                                       "snapshot-node-name": "lo"})
        log("blockdev-snapshot-sync", {"node-name": "lone", "snapshot-file": f"{d}/lone.over2",
                                       "snapshot-node-name": "lo"})
        log("blockdev-snapshot-sync", {"node-name": "ro", "snapshot-file": f"{d}/ro.over",
                                       "snapshot-node-name": "roo"})
        log("blockdev-snapshot-sync", {"node-name": "img", "snapshot-file": f"{d}/img.over",
                                       "snapshot-node-name": "io"})
        log("blockdev-snapshot-sync", {"node-name": "io", "snapshot-file": f"{d}/img.over2",
                                       "snapshot-node-name": "io2", "format": "qcow2",
                                       "mode": "absolute-paths"})
        log("blockdev-snapshot-sync", {"node-name": "flags", "snapshot-file": f"{d}/f.over",
                                       "snapshot-node-name": "fo"})
        log("blockdev-snapshot-sync", {"node-name": "ex", "snapshot-file": f"{d}/ex.over",
                                       "snapshot-node-name": "exo", "mode": "existing"})
        log.queries()
        log("blockdev-del", {"node-name": "io2"})
        log("blockdev-del", {"node-name": "disk"})
        log("blockdev-del", {"node-name": "img"})
        log("query-named-block-nodes", {"flat": True})
    return log.lines


def backing_chain(image: Path) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = json.loads(run(
        "qemu-img", "info", "-U", "--output=json", "--backing-chain", str(image)))
    for entry in chain:
        entry.pop("actual-size", None)
        entry.pop("dirty-flag", None)
    return chain


def test_snapshot_sync_graphs_and_images_same_as_qsd(tmp_path: Path) -> None:
    theirs, ours = on_both_daemons(tmp_path, snapshot_sync_graphs)
    assert_same(theirs, ours)
    for name in ("lone.over", "lone.over2", "ro.over", "img.over", "img.over2", "f.over"):
        qsd, qjobd = tmp_path / "qsd" / name, tmp_path / "qjobd" / name
        check(qjobd)
        expected = json.dumps(backing_chain(qsd)).replace(str(tmp_path / "qsd"), "D")
        assert json.dumps(backing_chain(qjobd)).replace(str(tmp_path / "qjobd"), "D") == (
            expected)
        run("qemu-img", "compare", str(qsd), str(qjobd))


def transactions(socket: Path, directory: Path) -> tuple[list[str], dict[str, list[str]],
                                                         list[str]]:
    for name in ("a", "b", "o", "c", "t"):
        image = make_qcow2(directory / f"{name}.qcow2", SIZE)
        if name in "ac":
            qemu_io(image, f"write -P {ord(name)} 0 3M")
    d = str(directory)

    def sync(node: str, file: str, name: str | None = None) -> dict[str, Any]:
        data = {"node-name": node, "snapshot-file": f"{d}/{file}"}
        if name is not None:
            data["snapshot-node-name"] = name
        return {"type": "blockdev-snapshot-sync", "data": data}

    def snap(node: str, overlay: str) -> dict[str, Any]:
        return {"type": "blockdev-snapshot", "data": {"node": node, "overlay": overlay}}

    def backup(kind: str, job: str, device: str, target: str, **extra: Any) -> dict[str, Any]:
        return {"type": kind, "data": {"job-id": job, "device": device, "target": target,
                                       "sync": "full", **extra}}

    abort = {"type": "abort", "data": {}}
    grouped = {"completion-mode": "grouped"}
    with Client(socket) as c:
        log = Log(c, directory, mask_sizes=True)
        log("blockdev-add", qcow2_opts("a", directory / "a.qcow2"))
        log("blockdev-add", {"driver": "raw", "node-name": "disk", "file": "a"})
        log("blockdev-add", qcow2_opts("b", directory / "b.qcow2"))
        log("blockdev-add", qcow2_opts("o", directory / "o.qcow2", backing=None))
        log("blockdev-add", qcow2_opts("c", directory / "c.qcow2"))
        log("blockdev-add", qcow2_opts("t", directory / "t.qcow2"))
        for actions, properties in [
            # Rolled back newest first: the job, then the snapshots.
            ([sync("a", "s1.qcow2", "s1"), backup("blockdev-backup", "j1", "disk", "b"),
              abort], None),
            ([snap("a", "o"), backup("drive-backup", "j2", "a", f"{d}/db.qcow2",
                                     format="qcow2"), abort], None),
            ([sync("a", "s2.qcow2", "s2"), snap("c", "o"), snap("a", "o")], None),
            ([sync("a", "s3.qcow2", "s3"), sync("c", "s4.qcow2")], None),
            ([backup("blockdev-backup", "j3", "c", "t"), snap("a", "o")], grouped),
            ([sync("a", "s5.qcow2", "s5")], grouped),
            ([{"type": "blockdev-snapshot"}], None),
            ([{"type": "blockdev-snapshot", "data": {"node": "a"}}], None),
            ([{"type": "blockdev-snapshot-sync", "data": {"node-name": "a"}}], None),
        ]:
            arguments: dict[str, Any] = {"actions": actions}
            if properties is not None:
                arguments["properties"] = properties
            log("transaction", arguments)
        log.queries()
        # Success: both snapshots, then a backup of the frozen node.
        log("transaction", {"actions": [
            sync("a", "s6.qcow2", "s6"), snap("c", "o"),
            backup("blockdev-backup", "j4", "a", "b")]})
        c.wait_status("j4", "null")
        log.queries()
        statuses = {job: without_drain_pairs(c.statuses(job))
                    for job in ("j1", "j2", "j3", "j4")}
        others = [f"{e['event']} {json.dumps(e['data'])}" for e in c.events
                  if e["event"] != "JOB_STATUS_CHANGE"]
    return log.lines, statuses, others


def test_transactions_same_as_qsd(tmp_path: Path) -> None:
    (theirs, their_statuses, their_events), (ours, our_statuses, our_events) = (
        on_both_daemons(tmp_path, transactions))
    assert_same(theirs, ours)
    assert our_statuses == their_statuses
    assert our_events == their_events
    qsd, qjobd = tmp_path / "qsd", tmp_path / "qjobd"
    # Images made by actions that were rolled back stay, as in QEMU.
    assert files(qjobd) == files(qsd)
    for name in ("s1.qcow2", "s2.qcow2", "s3.qcow2", "s6.qcow2"):
        check(qjobd / name)
        assert json.dumps(backing_chain(qjobd / name)).replace(str(qjobd), "D") == (
            json.dumps(backing_chain(qsd / name)).replace(str(qsd), "D"))
    run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(qjobd / "b.qcow2"),
        str(qjobd / "a.qcow2"))
    run("qemu-img", "compare", str(qsd / "b.qcow2"), str(qjobd / "b.qcow2"))

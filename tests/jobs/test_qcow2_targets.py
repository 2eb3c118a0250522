"""qcow2 images as targets: blockdev-create, drive-backup and mirrors, on a real qjobd.

blockdev-create with ``driver: qcow2`` is compared with qemu-storage-daemon 7.2:
the same replies, job statuses and errors, and images that qemu-img describes the
same way and finds clean.  Backups and mirrors into qcow2 must equal their source
and stay sparse (zero or unallocated clusters, never written zeroes).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client, without_drain_pairs
from helpers.daemons import kill_9_after, qsd_available
from helpers.images import MiB, make_image
from helpers.qcow2 import (
    assert_not_corrupt,
    check,
    info,
    make_qcow2,
    qcow2_opts,
    qemu_io,
    raw_content,
    run,
)


def create(job: str, **options: Any) -> dict[str, Any]:
    return {"job-id": job, "options": options}


#: (options besides file and driver) of each blockdev-create, valid and not.
CREATE_CASES: list[dict[str, Any]] = [
    {"size": 3 * MiB},
    {"size": 5 * MiB, "cluster-size": 512, "version": "v2"},
    {"size": 1 << 40, "cluster-size": 2 * MiB, "lazy-refcounts": True},
    {"size": 64 * MiB, "preallocation": "metadata", "cluster-size": 4096},
    {"size": 8 * MiB, "backing-file": "base.img", "backing-fmt": "raw"},
    {"size": 1000},
    {"size": MiB, "cluster-size": 1000},
    {"size": MiB, "cluster-size": 4 * MiB},
    {"size": MiB, "version": "v2", "lazy-refcounts": True},
    {"size": MiB, "backing-fmt": "raw"},
    {"size": MiB, "backing-file": "b.img", "preallocation": "metadata"},
    {"size": MiB, "refcount-bits": 3},
    {"size": MiB, "refcount-bits": 8, "version": "v2"},
    {"size": MiB, "version": "v2", "extended-l2": True},
    {"size": MiB, "extended-l2": True, "cluster-size": 4096},
]


def run_creations(socket: Path, directory: Path) -> tuple[list[str], list[Any]]:
    replies: list[str] = []
    statuses: list[Any] = []
    with Client(socket) as c:
        for index, options in enumerate(CREATE_CASES):
            path = directory / f"i{index}.qcow2"
            path.write_bytes(b"")
            c.ok("blockdev-add", {"driver": "file", "node-name": f"f{index}",
                                  "filename": str(path)})
            job = f"c{index}"
            replies.append(c.raw("blockdev-create",
                                 create(job, driver="qcow2", file=f"f{index}", **options)))
            c.wait_status(job, "concluded")
            replies.append(c.raw("query-jobs"))
            replies.append(c.raw("job-dismiss", {"id": job}))
            statuses.append(without_drain_pairs(c.statuses(job)))
        # A node name that does not exist, and an inline file node.
        replies.append(c.raw("blockdev-create", create("x", driver="qcow2", file="nope",
                                                       size=MiB)))
        c.wait_status("x", "concluded")
        replies.append(c.raw("query-jobs"))
        inline = {"driver": "file", "filename": str(directory / "inline.qcow2")}
        (directory / "inline.qcow2").write_bytes(b"")
        replies.append(c.raw("blockdev-create", create("y", driver="qcow2", file=inline,
                                                       size=2 * MiB)))
        c.wait_status("y", "concluded")
        replies.append(c.raw("query-jobs"))
        replies.append(c.raw("query-named-block-nodes", {"flat": True}))
    return replies, statuses


def described(image: Path) -> dict[str, Any]:
    """qemu-img's view of an image, minus what depends on the directory and disk."""
    facts = info(image)
    facts.pop("filename")
    facts.pop("actual-size", None)
    facts.pop("full-backing-filename", None)
    return facts


@pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")
def test_blockdev_create_qcow2_like_qsd(qjobd_socket: Path, qsd_socket: Path,
                                        tmp_path: Path) -> None:
    results = []
    for name, socket in (("qsd", qsd_socket), ("qjobd", qjobd_socket)):
        directory = tmp_path / name
        directory.mkdir()
        make_image(directory / "base.img", 8 * MiB)
        replies, statuses = run_creations(socket, directory)
        masked = [line.replace(str(directory), "D") for line in replies]
        results.append((directory, masked, statuses))
    (qsd_dir, qsd_replies, qsd_statuses), (our_dir, our_replies, our_statuses) = results
    assert our_statuses == qsd_statuses
    for index, (mine, theirs) in enumerate(zip(our_replies, qsd_replies, strict=True)):
        if '"node-name"' in theirs:
            # Node lists: the images' file nodes have equal sizes, names masked.
            mine_nodes = [(n["node-name"][:2], n["image"]["virtual-size"])
                          for n in json.loads(mine)["return"]]
            their_nodes = [(n["node-name"][:2], n["image"]["virtual-size"])
                           for n in json.loads(theirs)["return"]]
            assert mine_nodes == their_nodes
        else:
            assert mine == theirs, index
    for index, options in enumerate(CREATE_CASES):
        ours, theirs = our_dir / f"i{index}.qcow2", qsd_dir / f"i{index}.qcow2"
        if theirs.stat().st_size == 0:
            assert ours.stat().st_size == 0, options
            continue
        assert described(ours) == described(theirs), options
        check(ours)
        if "backing-file" not in options:
            run("qemu-img", "compare", str(ours), str(theirs))


def test_drive_backup_and_mirror_into_qcow2(qjobd_socket: Path, tmp_path: Path) -> None:
    source = make_image(tmp_path / "src.raw", 32 * MiB, holes=True, seed=3)
    existing = make_qcow2(tmp_path / "existing.qcow2", 32 * MiB)
    with Client(qjobd_socket) as c:
        c.add_raw("src", source)
        c.ok("drive-backup", {"job-id": "new", "device": "src", "sync": "full",
                              "format": "qcow2", "target": str(tmp_path / "new.qcow2")})
        c.wait_status("new", "null")
        c.ok("drive-backup", {"job-id": "old", "device": "src", "sync": "full",
                              "mode": "existing", "target": str(existing)})
        c.wait_status("old", "null")
        c.ok("drive-mirror", {"job-id": "mi", "device": "src", "sync": "full",
                              "format": "qcow2", "target": str(tmp_path / "m.qcow2")})
        c.wait_event("BLOCK_JOB_READY", "mi")
        c.ok("job-cancel", {"id": "mi"})
        c.wait_status("mi", "null")
        target = make_qcow2(tmp_path / "t.qcow2", 32 * MiB)
        c.ok("blockdev-add", qcow2_opts("t", target))
        c.ok("blockdev-mirror", {"job-id": "bm", "device": "src", "target": "t",
                                 "sync": "full"})
        c.wait_event("BLOCK_JOB_READY", "bm")
        c.ok("job-complete", {"id": "bm"})
        c.wait_status("bm", "null")
        c.ok("blockdev-del", {"node-name": "t"})
    data = source.stat().st_blocks * 512
    for image in ("new.qcow2", "existing.qcow2", "m.qcow2", "t.qcow2"):
        path = tmp_path / image
        check(path)
        run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(source), str(path))
        # Sparse: about what the source holds, never the full 32 MiB.
        assert path.stat().st_blocks * 512 <= data + 2 * MiB, image


def test_drive_backup_sync_none_names_the_source_as_backing(qjobd_socket: Path,
                                                            tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "disk.qcow2", 8 * MiB)
    qemu_io(base, "write -P 5 0 8M")
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("disk", base, **{"read-only": True}))
        c.ok("drive-backup", {"job-id": "n", "device": "disk", "sync": "none",
                              "format": "qcow2", "target": str(tmp_path / "cbw.qcow2")})
        c.settle(0.2)
        nodes = {n["node-name"]: n for n in c.ok("query-named-block-nodes", {"flat": True})}
        targets = [n for n in nodes.values() if n.get("backing_file") == str(base)]
        assert len(targets) == 1
        c.ok("job-cancel", {"id": "n"})
        c.wait_status("n", "null")
    facts = info(tmp_path / "cbw.qcow2")
    assert (facts["backing-filename"], facts["backing-filename-format"]) == (
        str(base), "qcow2")
    check(tmp_path / "cbw.qcow2")
    # Nothing changed in the source, so the overlay reads like it.
    assert raw_content(tmp_path / "cbw.qcow2", tmp_path / "a.raw") == raw_content(
        base, tmp_path / "b.raw")


def test_kill_9_during_mirrors_into_qcow2(tmp_path: Path) -> None:
    """kill -9 at random moments of a mirror into qcow2: the target is never corrupt
    (leaks at most), and once the job completed its content is the source's."""
    source = make_image(tmp_path / "src.raw", 24 * MiB, holes=True, seed=11)
    rng = random.Random(7)
    for round_number in range(12):
        target = make_qcow2(tmp_path / f"t{round_number}.qcow2", 24 * MiB,
                            cluster_size=rng.choice([4096, 65536]))
        completed = round_number % 3 == 2

        def actions(c: Client, target: Path = target, completed: bool = completed) -> None:
            c.add_raw("src", source)
            c.ok("blockdev-add", qcow2_opts("t", target))
            c.ok("blockdev-mirror", {"job-id": "m", "device": "src", "target": "t",
                                     "sync": "full", "speed": 40 * MiB})
            if completed:
                c.wait_event("BLOCK_JOB_READY", "m")
                c.ok("job-complete", {"id": "m"})
                c.wait_status("m", "null")
            else:
                c.settle(rng.uniform(0.0, 0.5))

        kill_9_after(tmp_path / f"k{round_number}.sock", actions)
        assert_not_corrupt(target)
        if completed:
            run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(source), str(target))


def test_mirror_granularity_follows_the_target_cluster_size(qjobd_socket: Path,
                                                            tmp_path: Path) -> None:
    """bdrv_get_default_bitmap_granularity: the cluster size, at least 4 KiB (QSD
    shows 16384 for a 16 KiB-cluster target and 4096 for a 512 B one)."""
    source = make_image(tmp_path / "s.raw", 8 * MiB)
    with Client(qjobd_socket) as c:
        c.add_raw("s", source)
        for cluster, expected in (("16k", 16384), ("512", 4096), ("2M", 2 * MiB)):
            target = make_qcow2(tmp_path / f"t{cluster}.qcow2", 8 * MiB,
                                cluster_size=cluster)
            c.ok("blockdev-add", qcow2_opts("t", target))
            job = f"m{cluster}"
            c.ok("blockdev-mirror", {"job-id": job, "device": "s", "target": "t",
                                     "sync": "full"})
            c.wait_event("BLOCK_JOB_READY", job)
            nodes = c.ok("query-named-block-nodes", {"flat": True})
            bitmaps = [n["dirty-bitmaps"] for n in nodes if n.get("node-name") == "s"]
            assert bitmaps[0][0]["granularity"] == expected
            c.ok("job-cancel", {"id": job})
            c.wait_status(job, "null")
            c.ok("blockdev-del", {"node-name": "t"})


def test_qjobds_own_creation_refusals(qjobd_socket: Path, tmp_path: Path) -> None:
    """What QEMU creates and qjobd does not yet: the job fails naming the feature,
    and the file is left untouched."""
    cases = [({"refcount-bits": 8}, "16-bit refcounts only (refcount-bits 8 asked)"),
             ({"extended-l2": True}, "with extended L2 entries")]
    with Client(qjobd_socket) as c:
        for index, (options, words) in enumerate(cases):
            path = tmp_path / f"r{index}.qcow2"
            path.write_bytes(b"")
            c.ok("blockdev-add", {"driver": "file", "node-name": f"f{index}",
                                  "filename": str(path)})
            c.ok("blockdev-create", create(f"c{index}", driver="qcow2", file=f"f{index}",
                                           size=MiB, **options))
            c.wait_status(f"c{index}", "concluded")
            error = c.ok("query-jobs")[0]["error"]
            assert words in error, error
            c.ok("job-dismiss", {"id": f"c{index}"})
            assert path.read_bytes() == b""

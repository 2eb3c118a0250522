"""block-commit, intermediate and active, through a real qjobd (and QSD 7.2).

The base must end up as ``qemu-img commit`` leaves it, the active image must read
as before (also after a kill -9 in the middle of the job), and the overlay must
name the base.  The argument checks, replies and job events are compared with
qemu-storage-daemon.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client, without_drain_pairs
from helpers.daemons import kill_9_after, on_both_daemons, qsd_available
from helpers.images import MiB
from helpers.qcow2 import (
    assert_not_corrupt,
    check,
    info,
    make_chain,
    make_qcow2,
    qcow2_opts,
    qemu_io,
    raw_content,
    run,
)

KiB = 1 << 10


def expected_base(images: list[Path], top: int, base: int, directory: Path) -> Path:
    """What qemu-img commit makes of the base: on copies of the chain."""
    copies = directory / "oracle"
    copies.mkdir()
    for image in images:
        shutil.copy(image, copies / image.name)
    for level in range(1, len(images)):
        run("qemu-img", "rebase", "-u", "-b", str(copies / f"l{level - 1}.qcow2"), "-F",
            "qcow2", str(copies / f"l{level}.qcow2"))
    run("qemu-img", "commit", "-b", str(copies / f"l{base}.qcow2"),
        str(copies / f"l{top}.qcow2"))
    return copies / f"l{base}.qcow2"


@pytest.mark.parametrize(("depth", "top", "base"), [(2, 1, 0), (3, 2, 0), (10, 8, 3)])
def test_commit_intermediate_images(qjobd_socket: Path, tmp_path: Path, depth: int,
                                    top: int, base: int) -> None:
    images = make_chain(tmp_path, depth, absolute=True)
    active = images[-1]
    before = raw_content(active, tmp_path / "before.raw")
    oracle = expected_base(images, top, base, tmp_path)
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("active", active))
        c.ok("block-commit", {"job-id": "c", "device": "active",
                              "top": str(images[top]), "base": str(images[base])})
        c.wait_status("c", "null")
        # The committed images left the chain and were closed.
        files = sorted(n["file"] for n in c.ok("query-named-block-nodes", {"flat": True})
                       if n["drv"] == "qcow2")
        assert files == sorted(str(images[i]) for i in
                               [*range(base + 1), *range(top + 1, depth + 1)])
    overlay = images[top + 1]
    assert info(overlay)["backing-filename"] == str(images[base])
    for image in (images[base], overlay):
        check(image)
    run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(images[base]), str(oracle))
    assert raw_content(active, tmp_path / "after.raw") == before


def test_read_only_base_is_reopened(qjobd_socket: Path, tmp_path: Path) -> None:
    images = make_chain(tmp_path, 2, absolute=True)
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("active", images[2]))
        c.ok("block-commit", {"job-id": "c", "device": "active", "top": str(images[1]),
                              "backing-file": "l0.qcow2", "speed": 64 * MiB})
        c.wait_status("c", "null")
        nodes = c.ok("query-named-block-nodes", {"flat": True})
        base = [n for n in nodes if n["file"] == str(images[0]) and n["drv"] == "qcow2"]
        assert [n["ro"] for n in base] == [True]
    assert info(images[2])["backing-filename"] == "l0.qcow2"
    check(images[0])


def exchanges(socket: Path, directory: Path) -> tuple[list[str], dict[str, list[str]]]:
    images = make_chain(directory, 2, absolute=True)
    d = str(directory)
    lines: list[str] = []
    with Client(socket) as c:
        c.ok("blockdev-add", qcow2_opts("top", images[2]))
        for arguments in [
            {"device": "nope"},
            {"device": "top", "top-node": "x", "top": "y"},
            {"device": "top", "top-node": "nope"},
            {"device": "top", "top": "/nope"},
            {"device": "top", "base": "/nope"},
            {"device": "top", "base-node": "nope"},
            {"device": "top", "base-node": "top"},
            {"device": "top", "top": f"{d}/l0.qcow2"},
            {"device": "top", "top": f"{d}/l1.qcow2", "base": f"{d}/l1.qcow2"},
            {"device": "top", "backing-file": "x"},
            {"device": "top", "top": f"{d}/l1.qcow2", "base-node": "x", "base": "y"},
            {"device": "top", "top": f"{d}/l1.qcow2", "job-id": "bad id"},
        ]:
            lines.append(c.raw("block-commit", arguments))
        lines.append(c.raw("block-commit", {"job-id": "c", "device": "top",
                                            "top": f"{d}/l1.qcow2", "auto-dismiss": False,
                                            "auto-finalize": False}))
        c.wait_status("c", "pending")
        lines.append(c.raw("query-jobs"))
        lines.append(c.raw("job-finalize", {"id": "c"}))
        c.wait_status("c", "concluded")
        lines.append(c.raw("query-jobs"))
        lines.append(c.raw("job-dismiss", {"id": "c"}))
        statuses = {"c": without_drain_pairs(c.statuses("c"))}
        events: list[Any] = [(e["event"], e.get("data")) for e in c.events
                             if e["event"] != "JOB_STATUS_CHANGE"]
    lines.append(repr(events))
    return [line.replace(d, "D") for line in lines], statuses


@pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")
def test_same_answers_and_events_as_qsd(tmp_path: Path) -> None:
    (theirs, their_statuses), (ours, our_statuses) = on_both_daemons(tmp_path, exchanges)
    assert our_statuses == their_statuses
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine == expected
    for image in ("l0.qcow2", "l2.qcow2"):
        check(tmp_path / "qjobd" / image)
        run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
            str(tmp_path / "qsd" / image), str(tmp_path / "qjobd" / image))


def test_kill_9_during_commit_keeps_what_the_guest_sees(tmp_path: Path) -> None:
    rng = random.Random(5)
    for round_number in range(8):
        directory = tmp_path / f"r{round_number}"
        directory.mkdir()
        images = make_chain(directory, 3, size=16 * MiB, absolute=True,
                            cluster_size=rng.choice([4 * KiB, 64 * KiB]))
        before = raw_content(images[-1], directory / "before.raw")

        def actions(c: Client, images: list[Path] = images) -> None:
            c.ok("blockdev-add", qcow2_opts("top", images[-1]))
            c.ok("block-commit", {"job-id": "c", "device": "top",
                                  "top": str(images[2]), "speed": 30 * MiB})
            c.settle(rng.uniform(0.0, 0.6))

        kill_9_after(directory / "d.sock", actions)
        assert_not_corrupt(*images)
        assert raw_content(images[-1], directory / "after.raw") == before, round_number


# Section: active commit


@pytest.mark.parametrize("depth", [1, 3])
def test_active_commit_complete_and_cancel(qjobd_socket: Path, tmp_path: Path,
                                           depth: int) -> None:
    """Completing pivots to the base, which then holds everything; cancelling when
    ready leaves the top in place with the base holding a copy of it."""
    for ending in ("complete", "cancel"):
        directory = tmp_path / ending
        directory.mkdir()
        images = make_chain(directory, depth, absolute=True)
        before = raw_content(images[-1], directory / "before.raw")
        oracle = expected_base(images, depth, 0, directory)
        with Client(qjobd_socket) as c:
            c.ok("blockdev-add", qcow2_opts(f"top-{ending}", images[-1]))
            c.ok("block-commit", {"job-id": ending, "device": f"top-{ending}"})
            c.wait_event("BLOCK_JOB_READY", ending)
            if ending == "complete":
                c.ok("job-complete", {"id": ending})
            else:
                c.ok("block-job-cancel", {"device": ending})
            c.wait_status(ending, "null")
            assert [e[0] for e in c.job_events(ending) if e[0] != "status"] == [
                "BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED"]
            c.ok("blockdev-del", {"node-name": f"top-{ending}"})
        check(images[0])
        run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(images[0]), str(oracle))
        run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(directory / "before.raw"),
            str(images[0]))
        assert raw_content(images[-1], directory / "after.raw") == before


def active_exchange(socket: Path, directory: Path) -> list[str]:
    images = make_chain(directory, 2, absolute=True)
    lines: list[str] = []
    with Client(socket) as c:
        c.ok("blockdev-add", qcow2_opts("top", images[2]))
        lines.append(c.raw("block-commit", {"job-id": "c", "device": "top",
                                            "auto-dismiss": False}))
        c.wait_event("BLOCK_JOB_READY", "c")
        lines.append(c.raw("query-block-jobs"))
        lines.append(c.raw("job-complete", {"id": "c"}))
        c.wait_status("c", "concluded")
        lines.append(c.raw("query-jobs"))
        lines.append(c.raw("job-dismiss", {"id": "c"}))
        lines.append(repr(without_drain_pairs(c.statuses("c"))))
        lines.append(repr([(e["event"], e.get("data")) for e in c.events
                           if e["event"] != "JOB_STATUS_CHANGE"]))
        nodes = c.ok("query-named-block-nodes", {"flat": True})
        lines.append(repr([(n["drv"], n["file"], n["ro"]) for n in nodes]))
    return [line.replace(str(directory), "D") for line in lines]


@pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")
def test_active_commit_like_qsd(tmp_path: Path) -> None:
    theirs, ours = on_both_daemons(tmp_path, active_exchange)
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine == expected
    check(tmp_path / "qjobd" / "l0.qcow2")
    run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
        str(tmp_path / "qsd" / "l0.qcow2"), str(tmp_path / "qjobd" / "l0.qcow2"))


def test_kill_9_during_active_commit(tmp_path: Path) -> None:
    rng = random.Random(9)
    for round_number in range(6):
        directory = tmp_path / f"r{round_number}"
        directory.mkdir()
        images = make_chain(directory, 2, size=16 * MiB, absolute=True,
                            cluster_size=rng.choice([4 * KiB, 64 * KiB]))
        before = raw_content(images[-1], directory / "before.raw")

        def actions(c: Client, top: Path = images[-1]) -> None:
            c.ok("blockdev-add", qcow2_opts("top", top))
            c.ok("block-commit", {"job-id": "c", "device": "top", "speed": 20 * MiB})
            c.settle(rng.uniform(0.0, 0.5))

        kill_9_after(directory / "d.sock", actions)
        assert_not_corrupt(*images)
        assert raw_content(images[-1], directory / "after.raw") == before, round_number


def test_a_smaller_base_grows(qjobd_socket: Path, tmp_path: Path) -> None:
    """As QEMU does: the base grows to the top's size before the copy (intermediate
    commit into a raw base, active commit into a qcow2 base), and the result is what
    qemu-img commit gives."""
    raw_base = tmp_path / "base.raw"
    raw_base.write_bytes(bytes([5]) * MiB)
    mid = make_qcow2(tmp_path / "mid.qcow2", 3 * MiB, backing=raw_base, backing_fmt="raw")
    qemu_io(mid, "write -P 6 2M 512k")
    top = make_qcow2(tmp_path / "top.qcow2", 3 * MiB, backing=mid)
    small = make_qcow2(tmp_path / "small.qcow2", MiB)
    qemu_io(small, "write -P 7 0 512k")
    over = make_qcow2(tmp_path / "over.qcow2", 5 * MiB, backing=small)
    qemu_io(over, "write -P 8 4M 64k", f"write -P 9 {MiB - 4096} 8192")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for image in (raw_base, mid, top, small, over):
        shutil.copy(image, theirs / image.name)
    run("qemu-img", "rebase", "-u", "-b", str(theirs / "base.raw"), "-F", "raw",
        str(theirs / "mid.qcow2"))
    run("qemu-img", "rebase", "-u", "-b", str(theirs / "small.qcow2"), "-F", "qcow2",
        str(theirs / "over.qcow2"))
    run("qemu-img", "commit", "-q", str(theirs / "mid.qcow2"))
    run("qemu-img", "commit", "-q", str(theirs / "over.qcow2"))
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("top", top))
        c.ok("block-commit", {"job-id": "i", "device": "top", "top": str(mid)})
        c.wait_status("i", "null")
        c.ok("blockdev-add", qcow2_opts("over", over))
        c.ok("block-commit", {"job-id": "a", "device": "over"})
        c.wait_status("a", "ready")
        c.ok("job-complete", {"id": "a"})
        c.wait_status("a", "null")
        assert c.ok("query-jobs") == []
        completed = [e for e in c.events if e["event"] == "BLOCK_JOB_COMPLETED"]
        assert len(completed) == 2
        assert all("error" not in e["data"] for e in completed), completed
    assert raw_base.stat().st_size == 3 * MiB
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(raw_base),
        str(theirs / "base.raw"))
    check(small)
    assert info(small)["virtual-size"] == 5 * MiB
    run("qemu-img", "compare", str(small), str(theirs / "small.qcow2"))

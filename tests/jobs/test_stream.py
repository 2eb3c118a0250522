"""block-stream on qcow2 backing chains, through a real qjobd (and QSD 7.2).

What the guest sees must never change: the top image reads the same before the
job, after it, and after a kill -9 in the middle of it.  Afterwards the top image
names the base (or nothing) as its backing file, and passes qemu-img check.  The
argument checks and the job's events are compared with qemu-storage-daemon.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client, without_drain_pairs
from helpers.daemons import kill_9_after, on_both_daemons, qsd_available
from helpers.images import MiB
from helpers.qcow2 import assert_not_corrupt, check, info, make_chain, qcow2_opts, raw_content

KiB = 1 << 10


def stream(c: Client, job: str, **arguments: Any) -> None:
    c.ok("block-stream", {"job-id": job, **arguments})
    c.wait_status(job, "null")


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_stream_whole_chain_and_down_to_a_base(qjobd_socket: Path, tmp_path: Path,
                                               depth: int) -> None:
    images = make_chain(tmp_path, depth)
    top = images[-1]
    before = raw_content(top, tmp_path / "before.raw")
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("top", top))
        if depth > 1:
            # Down to the middle of the chain first, by file name.
            middle = images[depth // 2]
            stream(c, "s1", device="top", base=str(middle))
            assert info(top)["backing-filename"] == str(middle)
            assert raw_content(top, tmp_path / "mid.raw") == before
        stream(c, "s2", device="top")
        nodes = c.ok("query-named-block-nodes", {"flat": True})
        assert [n["drv"] for n in nodes] == ["qcow2", "file"]
    assert "backing-filename" not in info(top)
    check(top)
    assert raw_content(top, tmp_path / "after.raw") == before


def test_base_node_bottom_and_backing_file(qjobd_socket: Path, tmp_path: Path) -> None:
    # Absolute names: the nodes given as backing are the ones the headers name, so
    # no filename turns into json:{...} (which QEMU would write into the header).
    images = make_chain(tmp_path, 3, absolute=True)
    before = raw_content(images[3], tmp_path / "before.raw")
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("base", images[0], **{"read-only": True}))
        c.ok("blockdev-add", qcow2_opts("l1", images[1], backing="base",
                                        **{"read-only": True}))
        c.ok("blockdev-add", qcow2_opts("l2", images[2], backing="l1",
                                        **{"read-only": True}))
        c.ok("blockdev-add", qcow2_opts("top", images[3], backing="l2"))
        # bottom=l2: only l2's data comes up; the top then sits on l1.
        stream(c, "s1", device="top", bottom="l2")
        assert info(images[3])["backing-filename"] == str(images[1])
        # base-node, with a name of our choosing written into the header.
        stream(c, "s2", device="top", **{"base-node": "base", "backing-file": "l0.qcow2"})
        facts = info(images[3])
        assert (facts["backing-filename"], facts["backing-filename-format"]) == (
            "l0.qcow2", "qcow2")
        # Monitor-owned images leave the chain but stay open.
        names = {n.get("node-name") for n in c.ok("query-named-block-nodes", {"flat": True})}
        assert {"base", "l1", "l2", "top"} <= names
    check(images[3])
    assert raw_content(images[3], tmp_path / "after.raw") == before


def test_read_only_top_is_reopened_for_the_job(qjobd_socket: Path, tmp_path: Path) -> None:
    """As QEMU does: writable during the job, read-only again afterwards."""
    images = make_chain(tmp_path, 2)
    before = raw_content(images[2], tmp_path / "before.raw")
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("ro", images[2], **{"read-only": True}))
        stream(c, "s", device="ro")
        nodes = c.ok("query-named-block-nodes", {"flat": True})
        assert [(n["drv"], n["ro"]) for n in nodes] == [("qcow2", True), ("file", True)]
        assert c.ok("query-jobs") == []
    check(images[2])
    assert raw_content(images[2], tmp_path / "after.raw") == before
    assert "backing-filename" not in info(images[2])


def exchanges(socket: Path, directory: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Argument checks, then two streams; replies as sent and each job's statuses."""
    images = make_chain(directory, 2)
    base = str(images[0])
    lines: list[str] = []
    with Client(socket) as c:
        c.ok("blockdev-add", qcow2_opts("top", images[2]))
        for arguments in [
            {"device": "nope"},
            {"device": "top", "base-node": "nope"},
            {"device": "top", "base-node": "top"},
            {"device": "top", "base": str(directory / "x.qcow2")},
            {"device": "top", "backing-file": "foo"},
            {"device": "top", "base": base, "bottom": "x"},
            {"device": "top", "base": base, "base-node": "x"},
            {"device": "top", "bottom": "x", "base-node": "x"},
            {"device": "top", "bottom": "nope"},
            {"device": "top"},
            {"device": "top", "job-id": "bad id"},
        ]:
            lines.append(c.raw("block-stream", arguments))
        lines.append(c.raw("block-stream", {"job-id": "s1", "device": "top", "base": base,
                                            "auto-dismiss": False, "auto-finalize": False}))
        c.wait_status("s1", "pending")
        lines.append(c.raw("query-jobs"))
        lines.append(c.raw("block-stream", {"job-id": "s2", "device": "top"}))
        lines.append(c.raw("job-finalize", {"id": "s1"}))
        c.wait_status("s1", "concluded")
        lines.append(c.raw("query-jobs"))
        lines.append(c.raw("job-dismiss", {"id": "s1"}))
        lines.append(c.raw("block-stream", {"job-id": "s2", "device": "top"}))
        c.wait_status("s2", "null")
        lines.append(c.raw("query-jobs"))
        statuses = {job: without_drain_pairs(c.statuses(job)) for job in ("s1", "s2")}
        events = [e["event"] for e in c.events if e["event"] != "JOB_STATUS_CHANGE"]
    lines.append(" ".join(events))
    return [line.replace(str(directory), "D") for line in lines], statuses


@pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")
def test_same_answers_and_events_as_qsd(tmp_path: Path) -> None:
    (theirs, their_statuses), (ours, our_statuses) = on_both_daemons(tmp_path, exchanges)
    assert our_statuses == their_statuses
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine == expected
    for name in ("qsd", "qjobd"):
        top = tmp_path / name / "l2.qcow2"
        assert "backing-filename" not in info(top)
        check(top)
    assert raw_content(tmp_path / "qsd" / "l2.qcow2", tmp_path / "a.raw") == raw_content(
        tmp_path / "qjobd" / "l2.qcow2", tmp_path / "b.raw")


def test_kill_9_during_stream_keeps_what_the_guest_sees(tmp_path: Path) -> None:
    rng = random.Random(3)
    for round_number in range(8):
        directory = tmp_path / f"r{round_number}"
        directory.mkdir()
        images = make_chain(directory, 3, size=16 * MiB, cluster_size=rng.choice(
            [4 * KiB, 64 * KiB]))
        top = images[-1]
        before = raw_content(top, directory / "before.raw")

        def actions(c: Client, top: Path = top) -> None:
            c.ok("blockdev-add", qcow2_opts("top", top))
            c.ok("block-stream", {"job-id": "s", "device": "top", "speed": 30 * MiB})
            c.settle(rng.uniform(0.0, 0.6))

        kill_9_after(directory / "d.sock", actions)
        assert_not_corrupt(top)
        assert raw_content(top, directory / "after.raw") == before, round_number


def error_exchanges(socket: Path, directory: Path) -> list[Any]:
    """Streams of a chain whose base fails reads (blkdebug under l0), with on-error
    report and stop: the events, and the job as a stopped one shows it.  (With
    ignore, QEMU's stream skips the failed step and ends with the error; qjobd
    retries it, as commit does in both.)"""
    images = make_chain(directory, 2, absolute=True)
    seen: list[Any] = []
    # A data cluster of l0 some steps into the image (qemu-img allocates them in
    # order after the metadata), so that progress stops part way.
    sector = (2 * MiB + 128 * KiB) // 512
    with Client(socket) as c:
        for index, (policy, once) in enumerate((("report", False), ("stop", True))):
            c.ok("blockdev-add", {
                "driver": "qcow2", "node-name": f"l0-{index}", "read-only": True,
                "file": {"driver": "blkdebug", "image": {
                    "driver": "file", "filename": str(images[0])},
                    "inject-error": [{"event": "read_aio", "errno": 5, "sector": sector,
                                      "once": once}]}})
            c.ok("blockdev-add", qcow2_opts(f"l1-{index}", images[1],
                                            backing=f"l0-{index}", **{"read-only": True}))
            top = directory / f"top{index}.qcow2"
            top.write_bytes(images[2].read_bytes())
            c.ok("blockdev-add", qcow2_opts(f"top-{index}", top, backing=f"l1-{index}"))
            job = f"s{index}"
            c.ok("block-stream", {"job-id": job, "device": f"top-{index}",
                                  "on-error": policy})
            if policy == "stop":
                c.wait_status(job, "paused")
                seen.append(c.ok("query-block-jobs"))
                c.ok("job-resume", {"id": job})
            c.wait_status(job, "null")
            seen.append([(e["event"], e["data"]) for e in c.events
                         if e["event"] != "JOB_STATUS_CHANGE"])
            seen.append(without_drain_pairs(c.statuses(job)))
            c.forget_events()
    return seen


@pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")
def test_read_errors_like_qsd(tmp_path: Path) -> None:
    """A failing read stops the walk at the step it is in, whatever the policy:
    the same events, progress and statuses as QSD's."""
    theirs, ours = on_both_daemons(tmp_path, error_exchanges)
    assert ours == theirs

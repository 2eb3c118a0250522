"""blockdev-create against a real qjobd: the recorded transcript section and more of
qemu-storage-daemon 7.2's answers.

(The file is not called test_create.py: tests/block has one, and test modules need
unique basenames.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from helpers.client import Client, without_drain_pairs
from helpers.images import MiB
from helpers.qcow2 import check, info


def create(job: str, **options: Any) -> dict[str, Any]:
    return {"job-id": job, "options": options}


def test_transcript_section(qjobd_socket: Path, tmp_path: Path) -> None:
    image = tmp_path / "n.img"
    with Client(qjobd_socket) as c:
        assert c.raw("blockdev-create", create(
            "c1", driver="file", filename=str(image), size=4194304)) == '{"return": {}}'
        c.wait_status("c1", "concluded")
        assert c.statuses("c1") == ["created", "running", "waiting", "pending", "concluded"]
        assert c.events[:2] == [e for e in c.events if e["data"]["status"] in (
            "created", "running")]
        assert c.raw("query-jobs") == (
            '{"return": [{"current-progress": 1, "status": "concluded", "total-progress": 1, '
            '"type": "create", "id": "c1"}]}')
        assert c.raw("job-dismiss", {"id": "c1"}) == '{"return": {}}'
        assert c.statuses("c1")[-1] == "null"
        c.ok("blockdev-add", {"driver": "file", "node-name": "f", "filename": str(image)})
        assert c.error("blockdev-create", create("c2", driver="raw", file="f",
                                                 size=4194304)) == (
            "Parameter 'options.size' is unexpected")
        assert c.error("blockdev-create", create("c2", driver="raw")) == (
            "Driver does not support blockdev-create")
        assert c.error("blockdev-create", create("c3", driver="nosuch")) == (
            "Parameter 'driver' does not accept value 'nosuch'")
        missing = tmp_path / "nodir" / "x"
        assert c.raw("blockdev-create", create(
            "c4", driver="file", filename=str(missing), size=1048576)) == '{"return": {}}'
        # It failed before the reply, as in QSD.
        assert c.statuses("c4") == ["created", "running", "aborting", "concluded"]
        assert c.raw("query-jobs") == (
            '{"return": [{"current-progress": 1, "status": "concluded", "total-progress": 1, '
            f'"type": "create", "id": "c4", "error": "Could not create \'{missing}\': '
            'No such file or directory"}]}')
        assert c.raw("job-dismiss", {"id": "c4"}) == '{"return": {}}'
        assert c.statuses("c4")[-1] == "null"
        # Not a block job: no BLOCK_JOB_* events at all.
        assert {e["event"] for e in c.events} == {"JOB_STATUS_CHANGE"}
    assert image.stat().st_size == 4 * MiB
    assert image.stat().st_blocks * 512 <= 64 * 1024


def test_more_answers(qjobd_socket: Path, tmp_path: Path) -> None:
    t = tmp_path
    with Client(qjobd_socket) as c:
        assert c.error("blockdev-create", create(
            "bad id", driver="file", filename=str(t / "n.img"), size=MiB)) == (
            "Invalid job ID 'bad id'")
        assert not (t / "n.img").exists()
        c.ok("blockdev-create", create("c1", driver="file", filename=str(t / "n.img"),
                                       size=4 * MiB))
        assert c.error("blockdev-create", create(
            "c1", driver="file", filename=str(t / "n2.img"), size=MiB)) == (
            "Job ID 'c1' already in use")
        assert not (t / "n2.img").exists()
        for driver in ("null-co", "blkdebug"):
            assert c.error("blockdev-create", create("c2", driver=driver)) == (
                "Driver does not support blockdev-create")
        c.ok("blockdev-create", create("c2", driver="file", filename=str(t / "p.img"),
                                       size=4 * MiB, preallocation="metadata"))
        c.ok("blockdev-create", create("c3", driver="file", filename=str(t / "p.img"),
                                       size=-1))
        c.ok("blockdev-create", create("c5", driver="file", filename=str(t / "f.img"),
                                       size=2 * MiB, preallocation="full"))
        c.ok("blockdev-create", create("c6", driver="file", filename=str(t / "h.img"),
                                       size=MiB, **{"extent-size-hint": 1 << 33}))
        for job in ("c1", "c2", "c3", "c5", "c6"):
            c.wait_status(job, "concluded")
        jobs = c.ok("query-jobs")
        # Newest first, as QEMU lists them.
        assert [job["id"] for job in jobs] == ["c6", "c5", "c3", "c2", "c1"]
        errors = {job["id"]: job.get("error") for job in jobs}
        assert errors == {"c6": "Extent size hint is too large", "c5": None,
                          "c3": "Could not resize file: Invalid argument",
                          "c2": "Unsupported preallocation mode: metadata", "c1": None}
        assert {(job["current-progress"], job["total-progress"]) for job in jobs} == {(1, 1)}
        assert c.statuses("c2") == ["created", "running", "aborting", "concluded"]
        assert without_drain_pairs(c.statuses("c5")) == [
            "created", "running", "waiting", "pending", "concluded"]
        # Invisible to the block-job-* family.
        assert c.cmd("block-job-cancel", {"device": "c1"}) == {"error": {
            "class": "DeviceNotActive", "desc": "Block job 'c1' not found"}}
        assert c.ok("query-block-jobs") == []
        assert c.error("job-cancel", {"id": "c1"}) == (
            "Job 'c1' in state 'concluded' cannot accept command verb 'cancel'")
        # qcow2 over an existing file node.
        c.ok("blockdev-add", {"driver": "file", "node-name": "f", "filename": str(t / "n.img")})
        c.ok("blockdev-create", create("q", driver="qcow2", file="f", size=4 * MiB))
        c.wait_status("q", "concluded")
        assert "error" not in c.ok("query-jobs")[0]
        for job in ("q", "c1", "c2", "c3", "c5", "c6"):
            c.ok("job-dismiss", {"id": job})
        assert c.ok("query-jobs") == []
    assert os.stat(t / "f.img").st_blocks * 512 >= 2 * MiB
    assert info(t / "n.img")["virtual-size"] == 4 * MiB
    check(t / "n.img")


def test_same_answers_as_qsd(qjobd_socket: Path, qsd_socket: Path, tmp_path: Path) -> None:
    transcripts = []
    for name, path in (("qsd", qsd_socket), ("qjobd", qjobd_socket)):
        directory = tmp_path / name
        directory.mkdir()
        with Client(path) as c:
            replies = [c.raw("blockdev-create", create(
                "a", driver="file", filename=str(directory / "a.img"), size=3 * MiB + 512))]
            c.wait_status("a", "concluded")
            replies.append(c.raw("blockdev-create", create(
                "b", driver="file", filename=str(directory / "x" / "b.img"), size=MiB)))
            c.wait_status("b", "concluded")
            replies += [c.raw("query-jobs").replace(str(directory), "D"),
                        c.raw("job-dismiss", {"id": "b"}), c.raw("job-dismiss", {"id": "a"}),
                        c.raw("job-dismiss", {"id": "a"})]
            statuses = {job: without_drain_pairs(c.statuses(job)) for job in ("a", "b")}
        transcripts.append((replies, statuses, (directory / "a.img").stat().st_size))
    assert transcripts[0] == transcripts[1]

"""The transaction command against a real qjobd (and qemu-storage-daemon).

Recorded from qemu-storage-daemon 7.2: the transcript sections "grouped transaction:
cancelling one member aborts both" and "transaction argument errors", a grouped
transaction whose member fails on an injected read error, and the roll-back when a
later action fails to prepare (created jobs go aborting, concluded, null, newest
first).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from helpers.client import Client, without_drain_pairs
from helpers.images import MiB, assert_same_content, make_image, need_qemu_img

GROUPED = {"completion-mode": "grouped"}


def bb(job: str, device: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"type": "blockdev-backup",
            "data": {"job-id": job, "device": device, "target": target, "sync": "full",
                     **extra}}


def setup(c: Client, tmp_path: Path, failing: bool = False) -> None:
    c.add_raw("a", make_image(tmp_path / "a.img", 32 * MiB, data=True, seed=31))
    c.add_raw("b", make_image(tmp_path / "b.img", 32 * MiB, data=True))
    c.add_raw("c", make_image(tmp_path / "c.img", 32 * MiB, data=True))
    if failing:
        c.add_blkdebug("e", make_image(tmp_path / "e.img", 32 * MiB, data=True, seed=32),
                       [{"event": "read_aio", "errno": 5, "sector": 2048}])


def test_grouped_cancel_aborts_both(qjobd_socket: Path, tmp_path: Path) -> None:
    with Client(qjobd_socket) as c:
        setup(c, tmp_path)
        assert c.raw("transaction", {"actions": [
            bb("t1", "a", "b"), bb("t2", "a", "c", speed=8388608)],
            "properties": GROUPED}) == '{"return": {}}'
        assert [e["data"] for e in c.events[:2]] == [
            {"status": "created", "id": "t1"}, {"status": "created", "id": "t2"}]
        c.wait_status("t1", "waiting")
        # t2 sleeps for its speed limit (a cancel that finds a chunk in flight waits
        # for it, in QSD too, and its events come after the reply).
        deadline = time.monotonic() + 10
        while (job := next(j for j in c.ok("query-block-jobs") if j["device"] == "t2"))[
                "busy"] or not job["offset"]:
            assert time.monotonic() < deadline, job
            time.sleep(0.001)
        assert c.raw("job-cancel", {"id": "t2"}) == '{"return": {}}'
        # Everything happened before the reply, in QSD's order.
        tail = [(e["event"], e["data"]) for e in c.events[-8:]]
        assert [(name, data.get("status", data.get("device"))) for name, data in tail] == [
            ("JOB_STATUS_CHANGE", "aborting"), ("BLOCK_JOB_CANCELLED", "t2"),
            ("JOB_STATUS_CHANGE", "concluded"), ("JOB_STATUS_CHANGE", "null"),
            ("JOB_STATUS_CHANGE", "aborting"), ("BLOCK_JOB_CANCELLED", "t1"),
            ("JOB_STATUS_CHANGE", "concluded"), ("JOB_STATUS_CHANGE", "null"),
        ]
        assert tail[5][1] == {"device": "t1", "len": 33554432, "offset": 33554432,
                              "speed": 0, "type": "backup"}
        cancelled = tail[1][1]
        assert {**cancelled, "offset": 0} == {"device": "t2", "len": 33554432, "offset": 0,
                                              "speed": 8388608, "type": "backup"}
        assert c.statuses("t1") == [
            "created", "running", "waiting", "aborting", "concluded", "null"]
        assert c.statuses("t2") == ["created", "running", "aborting", "concluded", "null"]
        assert c.ok("query-named-block-nodes", {"flat": True})[0]["drv"] != "copy-before-write"


def test_argument_errors(qjobd_socket: Path) -> None:
    with Client(qjobd_socket) as c:
        assert c.raw("transaction", {"actions": [bb("t1", "a", "b")],
                                     "properties": {"completion-mode": "bogus"}}) == (
            '{"error": {"class": "GenericError", "desc": "Parameter \'completion-mode\' '
            'does not accept value \'bogus\'"}}')
        assert c.raw("transaction", {"actions": [{"type": "nosuch-action", "data": {}}]}) == (
            '{"error": {"class": "GenericError", "desc": "Parameter \'type\' does not '
            'accept value \'nosuch-action\'"}}')
        assert c.raw("transaction", {"actions": []}) == '{"return": {}}'
        # The abort action, as in QEMU.
        assert c.error("transaction", {"actions": [{"type": "abort", "data": {}}]}) == (
            "Transaction aborted using Abort action")
        assert c.error("transaction", {"actions": [{"type": "abort"}]}) == (
            "Parameter 'actions[0].data' is missing")
        # Kinds qjobd does not perform.
        assert c.error("transaction", {"actions": [
            {"type": "block-dirty-bitmap-merge"}]}) == (
            "Transaction action 'block-dirty-bitmap-merge' is not supported by qjobd")
        assert c.error("transaction", {"actions": [
            {"type": "block-dirty-bitmap-add"}], "properties": GROUPED}) == (
            "Transaction action 'block-dirty-bitmap-add' is not supported by qjobd")
        assert c.events == []


def test_grouped_member_failure_cancels_the_other(qjobd_socket: Path, tmp_path: Path) -> None:
    with Client(qjobd_socket) as c:
        setup(c, tmp_path, failing=True)
        c.ok("transaction", {"actions": [bb("t1", "a", "b", speed=8388608),
                                         bb("t2", "e", "c")], "properties": GROUPED})
        c.wait_status("t1", "null")
        order = [(e["event"], e["data"].get("id") or e["data"].get("device"),
                  e["data"].get("status")) for e in c.events[4:]]
        assert order == [
            ("BLOCK_JOB_ERROR", "t2", None),
            ("JOB_STATUS_CHANGE", "t2", "aborting"),
            ("BLOCK_JOB_COMPLETED", "t2", None),
            ("JOB_STATUS_CHANGE", "t2", "concluded"),
            ("JOB_STATUS_CHANGE", "t2", "null"),
            ("JOB_STATUS_CHANGE", "t1", "aborting"),
            ("BLOCK_JOB_CANCELLED", "t1", None),
            ("JOB_STATUS_CHANGE", "t1", "concluded"),
            ("JOB_STATUS_CHANGE", "t1", "null"),
        ]
        assert [(name, data) for name, data in c.job_events("t2") if name != "status"] == [
            ("BLOCK_JOB_ERROR", {"device": "t2", "operation": "read", "action": "report"}),
            ("BLOCK_JOB_COMPLETED", {"device": "t2", "len": 33554432, "offset": 32505856,
                                     "speed": 0, "type": "backup",
                                     "error": "Input/output error"})]


def test_grouped_failure_cancels_a_waiting_member(qjobd_socket: Path, tmp_path: Path) -> None:
    with Client(qjobd_socket) as c:
        setup(c, tmp_path, failing=True)
        c.ok("transaction", {"actions": [bb("t1", "a", "b", **{"auto-finalize": False}),
                                         bb("t2", "e", "c", speed=1048576)],
                             "properties": GROUPED})
        c.wait_status("t2", "null")
        c.wait_status("t1", "null")
        assert c.statuses("t1") == [
            "created", "running", "waiting", "aborting", "concluded", "null"]
        assert [data for name, data in c.job_events("t1") if name != "status"] == [
            {"device": "t1", "len": 33554432, "offset": 33554432, "speed": 0,
             "type": "backup"}]
        # With a speed limit QSD has one chunk in flight, not 64.
        assert [data for name, data in c.job_events("t2") if name == "BLOCK_JOB_COMPLETED"] == [
            {"device": "t2", "len": 33554432, "offset": 1048576, "speed": 1048576,
             "type": "backup", "error": "Input/output error"}]
        assert c.ok("query-jobs") == []


def test_individual_failure_leaves_the_other(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    with Client(qjobd_socket) as c:
        setup(c, tmp_path, failing=True)
        c.ok("transaction", {"actions": [bb("t1", "a", "b"), bb("t2", "e", "c")]})
        c.wait_status("t1", "null")
        c.wait_status("t2", "null")
        assert without_drain_pairs(c.statuses("t1")) == [
            "created", "running", "waiting", "pending", "concluded", "null"]
        assert c.statuses("t2") == ["created", "running", "aborting", "concluded", "null"]
    assert_same_content(tmp_path / "a.img", tmp_path / "b.img")


def test_prepare_failures_roll_back(qjobd_socket: Path, tmp_path: Path) -> None:
    rolled_back = ["created", "aborting", "concluded", "null"]
    with Client(qjobd_socket) as c:
        setup(c, tmp_path)
        before = c.ok("query-named-block-nodes")
        for actions, properties, desc in [
            ([bb("t1", "a", "b"), bb("t2", "a", "nosuch")], GROUPED,
             "Cannot find device='nosuch' nor node-name='nosuch'"),
            ([bb("t1", "a", "b"), bb("t1", "a", "c")], None, "Job ID 't1' already in use"),
            ([bb("t1", "a", "b"), bb("t2", "c", "b")], None,
             "Node 'b' is busy: block device is in use by block job: backup"),
        ]:
            c.forget_events()
            arguments: dict[str, Any] = {"actions": actions}
            if properties:
                arguments["properties"] = properties
            assert c.error("transaction", arguments) == desc
            assert [(e["data"]["id"], e["data"]["status"]) for e in c.events] == [
                ("t1", status) for status in rolled_back]
            assert c.ok("query-named-block-nodes") == before
        # A negative speed: that job is created and dropped, then the first rolls back.
        c.forget_events()
        assert c.error("transaction", {"actions": [
            bb("t1", "a", "b"), bb("t2", "a", "c", speed=-1)]}) == (
            "Parameter 'speed' expects a non-negative value")
        assert [(e["data"]["id"], e["data"]["status"]) for e in c.events] == [
            ("t1", "created"), ("t2", "created"), ("t2", "null"), ("t1", "aborting"),
            ("t1", "concluded"), ("t1", "null")]
        # Newest first; drive-backup's image stays created but its nodes go.
        c.forget_events()
        image = tmp_path / "db.img"
        assert c.error("transaction", {"actions": [
            bb("t1", "a", "b"),
            {"type": "drive-backup", "data": {"job-id": "t2", "device": "a",
                                              "target": str(image), "sync": "full",
                                              "format": "raw"}},
            {"type": "abort", "data": {}}]}) == "Transaction aborted using Abort action"
        assert [(e["data"]["id"], e["data"]["status"]) for e in c.events] == [
            ("t1", "created"), ("t2", "created")] + [
            ("t2", status) for status in rolled_back[1:]] + [
            ("t1", status) for status in rolled_back[1:]]
        assert image.stat().st_size == 32 * MiB
        assert c.ok("query-named-block-nodes") == before
        # Where QSD 7.2 hangs for good (two created jobs in a grouped transaction,
        # then a failure), qjobd rolls both back.
        c.forget_events()
        assert c.error("transaction", {"actions": [
            bb("t1", "a", "b"), bb("t2", "a", "c"), {"type": "abort", "data": {}}],
            "properties": GROUPED}) == "Transaction aborted using Abort action"
        assert [(e["data"]["id"], e["data"]["status"]) for e in c.events] == [
            ("t1", "created"), ("t2", "created")] + [
            ("t2", status) for status in rolled_back[1:]] + [
            ("t1", status) for status in rolled_back[1:]]
        assert c.ok("query-jobs") == []
        assert c.ok("query-named-block-nodes") == before


def test_grouped_success_with_drive_backup(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    image = tmp_path / "db2.img"
    with Client(qjobd_socket) as c:
        setup(c, tmp_path)
        c.ok("transaction", {"actions": [
            {"type": "drive-backup", "data": {"job-id": "t3", "device": "a",
                                              "target": str(image), "sync": "full",
                                              "format": "raw"}},
            bb("t4", "a", "b")], "properties": GROUPED})
        c.wait_status("t3", "null")
        c.wait_status("t4", "null")
        order = [(e["data"].get("id") or e["data"].get("device"), e["data"].get("status"))
                 for e in c.events if e["data"].get("status") not in ("created", "running")]
        # Both wait; then pending, completion and conclusion go newest first.
        assert order[:2] in ([("t3", "waiting"), ("t4", "waiting")],
                             [("t4", "waiting"), ("t3", "waiting")])
        assert order[2:] == [
            ("t4", "pending"), ("t3", "pending"), ("t4", None), ("t4", "concluded"),
            ("t4", "null"), ("t3", None), ("t3", "concluded"), ("t3", "null")]
    assert_same_content(tmp_path / "a.img", image)
    assert_same_content(tmp_path / "a.img", tmp_path / "b.img")


def test_grouped_failure_same_as_qsd(qjobd_socket: Path, qsd_socket: Path,
                                     tmp_path: Path) -> None:
    """One member fails on an injected error: same replies, events, and images."""
    need_qemu_img()
    results = []
    for name, path in (("qsd", qsd_socket), ("qjobd", qjobd_socket)):
        directory = tmp_path / name
        directory.mkdir()
        with Client(path) as c:
            setup(c, directory, failing=True)
            reply = c.raw("transaction", {"actions": [bb("t1", "a", "b", speed=8388608),
                                                      bb("t2", "e", "c")],
                                          "properties": GROUPED})
            c.wait_status("t1", "null")
            c.wait_status("t2", "null")
            events = {}
            for job in ("t1", "t2"):
                others = [(n, {k: v for k, v in d.items() if (job, k) != ("t1", "offset")})
                          for n, d in c.job_events(job) if n != "status"]
                events[job] = (without_drain_pairs(c.statuses(job)), others)
            results.append((reply, events, c.raw("query-jobs")))
    assert results[0] == results[1]
    # The failed member copied every chunk but the failing one, on both daemons.
    assert_same_content(tmp_path / "qsd" / "c.img", tmp_path / "qjobd" / "c.img")

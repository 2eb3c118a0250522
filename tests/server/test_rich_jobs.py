"""qjobd's job extensions against a real daemon: details and filters in query-jobs,
JOB_PROGRESS for the clients that enable it, x-job-wait.

Every job type records the same details (one builder, qjobd.jobs.details); backups
stand in for the block jobs, blockdev-create and snapshot-delete for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client
from helpers.daemons import Daemon
from helpers.images import MiB, make_image
from helpers.wire import Wire

qmp = pytest.importorskip("qemu.qmp")

PLAIN = {"id", "type", "status", "current-progress", "total-progress"}
EXTENSION = {"progress-description", "time-created", "time-started", "started-by",
             "started-by-uid", "command", "arguments", "speed", "rate",
             "progress-valid", "status-history"}


def seconds(stamp: dict[str, int]) -> float:
    return stamp["seconds"] + stamp["microseconds"] / 1e6


def slow_backup(c: Client, tmp_path: Path, job: str, speed: int = MiB,
                size: int = 8 * MiB, **extra: Any) -> dict[str, Any]:
    """A backup of ``size`` data bytes at ``speed``: it runs size/speed seconds."""
    src = make_image(tmp_path / f"{job}-src.raw", size, data=True)
    dst = make_image(tmp_path / f"{job}-dst.raw", size)
    c.add_raw(f"{job}-src", src)
    c.add_raw(f"{job}-dst", dst)
    arguments = {"job-id": job, "device": f"{job}-src", "target": f"{job}-dst",
                 "sync": "full", "speed": speed, **extra}
    return arguments


def send_with_id(c: Client, request_id: Any, execute: str, arguments: dict[str, Any]) -> Any:
    c.wire.send(json.dumps({"execute": execute, "arguments": arguments,
                            "id": request_id}) + "\n")
    line = c.wire.raw_reply(timeout=30)
    c._collect()
    assert line is not None
    return json.loads(line)


# Section: query-jobs details and filters


def test_details_carry_every_extension_member(qjobd_socket: Path, tmp_path: Path) -> None:
    with Client(qjobd_socket) as c:
        arguments = slow_backup(c, tmp_path, "bk", speed=2 * MiB, size=32 * MiB)
        before = time.time()
        reply = send_with_id(c, {"who": ["me", 1]}, "blockdev-backup", arguments)
        assert reply == {"return": {}, "id": {"who": ["me", 1]}}
        time.sleep(1.2)  # long enough for a rate
        plain = c.raw("query-jobs")
        assert c.raw("query-jobs", {"details": False}) == plain
        assert set(json.loads(plain)["return"][0]) == PLAIN
        (info,) = c.ok("query-jobs", {"details": True})
        assert set(info) == PLAIN | EXTENSION | {"expected-end"}
        assert info["id"] == "bk"
        assert info["status"] == "running"
        assert info["started-by"] == {"who": ["me", 1]}
        assert info["started-by-uid"] == os.getuid()
        assert info["command"] == "blockdev-backup"
        assert info["arguments"] == arguments
        assert info["speed"] == 2 * MiB
        assert info["progress-valid"] is True
        assert info["total-progress"] == 32 * MiB
        assert 0 < info["current-progress"] < 32 * MiB
        # At 2 MiB/s, measured over the time the job has run.
        assert MiB <= info["rate"] <= 4 * MiB, info["rate"]
        created, started = seconds(info["time-created"]), seconds(info["time-started"])
        assert before - 0.01 <= created <= started <= time.time()
        left = (32 * MiB - info["current-progress"]) / info["rate"]
        assert seconds(info["expected-end"]) == pytest.approx(time.time() + left, abs=1.5)
        assert [entry["status"] for entry in info["status-history"]] == ["created", "running"]
        assert seconds(info["status-history"][1]["time"]) == pytest.approx(started, abs=0.01)
        assert info["progress-description"].startswith("Copied ")
        assert info["progress-description"].endswith(" of 32 MiB")

        c.ok("job-pause", {"id": "bk"})
        c.wait_status("bk", "paused")
        (info,) = c.ok("query-jobs", {"details": True})
        assert info["progress-description"].startswith("Paused after ")
        assert "expected-end" not in info
        assert "time-finished" not in info
        c.ok("job-cancel", {"id": "bk"})
        c.wait_status("bk", "null")


def test_jobs_without_request_id_and_other_job_types(qjobd_socket: Path,
                                                     tmp_path: Path) -> None:
    with Client(qjobd_socket) as c:
        c.ok("blockdev-create", {"job-id": "mk", "options": {
            "driver": "file", "filename": str(tmp_path / "new.raw"), "size": MiB}})
        c.wait_status("mk", "concluded")
        c.ok("snapshot-delete", {"job-id": "sd", "tag": "t", "devices": []})
        c.wait_status("sd", "concluded")
        infos = {info["id"]: info for info in c.ok("query-jobs", {"details": True})}
        for job in ("mk", "sd"):
            info = infos[job]
            assert "started-by" not in info  # the command had no id
            assert info["progress-valid"] is True
            assert seconds(info["time-started"]) <= seconds(info["time-finished"])
        mk, sd = infos["mk"], infos["sd"]
        assert mk["command"] == "blockdev-create"
        assert mk["progress-description"] == "Finished"
        assert [s["status"] for s in mk["status-history"]] == [
            "created", "running", "waiting", "pending", "concluded"]
        # A snapshot job without devices fails, as in QEMU.
        assert sd["type"] == "snapshot-delete"
        assert sd["arguments"] == {"job-id": "sd", "tag": "t", "devices": []}
        assert sd["error"] == "At least one device is required for snapshot"
        assert sd["progress-description"] == f"Failed: {sd['error']}"
        assert [s["status"] for s in sd["status-history"]] == [
            "created", "running", "aborting", "concluded"]


def test_filters(qjobd_socket: Path, tmp_path: Path) -> None:
    with Client(qjobd_socket) as c:
        send_with_id(c, 7, "blockdev-backup", slow_backup(c, tmp_path, "bk-a"))
        c.ok("blockdev-backup", slow_backup(c, tmp_path, "bk-b"))
        c.ok("job-pause", {"id": "bk-b"})
        c.wait_status("bk-b", "paused")
        c.ok("blockdev-create", {"job-id": "mk", "options": {
            "driver": "file", "filename": str(tmp_path / "new.raw"), "size": MiB}})
        c.wait_status("mk", "concluded")

        def ids(*filters: list[Any], details: bool | None = None) -> list[str]:
            arguments: dict[str, Any] = {"filters": list(filters)}
            if details is not None:
                arguments["details"] = details
            return [info["id"] for info in c.ok("query-jobs", arguments)]

        assert ids() == ["mk", "bk-b", "bk-a"]  # newest first, as query-jobs
        assert ids(["id", "=", "bk-a"]) == ["bk-a"]
        assert ids(["id", "!=", "bk-a"]) == ["mk", "bk-b"]
        assert ids(["status", "in", ["running", "paused"]]) == ["bk-b", "bk-a"]
        assert ids(["status", "nin", ["running", "paused"]]) == ["mk"]
        assert ids(["type", "!=", "create"]) == ["bk-b", "bk-a"]
        assert ids(["id", "^", "bk-"], ["id", "$", "b"]) == ["bk-b"]  # all must hold
        assert ids(["total-progress", ">", MiB]) == ["bk-b", "bk-a"]
        assert ids(["total-progress", "<=", MiB]) == ["mk"]
        assert ids(["total-progress", ">=", 8 * MiB], ["total-progress", "<", 9 * MiB]) == [
            "bk-b", "bk-a"]
        assert ids(["started-by", "=", 7]) == ["bk-a"]
        assert ids(["started-by", "=", None]) == ["mk", "bk-b"]
        assert ids(["started-by", "=", True]) == []  # true is not 1
        assert ids(["error", "=", None]) == ["mk", "bk-b", "bk-a"]
        assert ids(["command", "=", "blockdev-create"]) == ["mk"]
        assert ids(["progress-valid", "=", True]) == ["mk", "bk-b", "bk-a"]
        assert ids(["time-created", ">", time.time() + 60]) == []
        assert ids(["time-created", ">", 0], ["time-finished", "=", None]) == ["bk-b", "bk-a"]
        assert ids(["speed", "=", MiB]) == ["bk-b", "bk-a"]
        # details false: filtered, and QEMU's members only.
        plain = c.ok("query-jobs", {"filters": [["id", "=", "mk"]], "details": False})
        assert plain == [{"id": "mk", "type": "create", "status": "concluded",
                          "current-progress": 1, "total-progress": 1}]
        assert set(c.ok("query-jobs", {"filters": []})[0]) == (
            PLAIN | EXTENSION | {"time-finished"}) - {"started-by"}

        for filters, desc in [
            (["id"], "Invalid parameter type for 'filters[0]', "
                     "expected: array [field, operator, value]"),
            ("x", "Invalid parameter type for 'filters[0]', "
                  "expected: array [field, operator, value]"),
            ([1, "=", 1], "Invalid parameter type for 'filters[0][0]', expected: string"),
            (["idx", "=", "a"], "Parameter 'filters[0][0]' does not accept value 'idx'"),
            (["id", "~", "a"], "Parameter 'filters[0][1]' does not accept value '~'"),
            (["id", None, "a"], "Invalid parameter type for 'filters[0][1]', expected: string"),
            (["speed", "^", "a"],
             "Parameter 'filters[0][1]' does not accept value '^' for field 'speed'"),
            (["started-by", "<", 1],
             "Parameter 'filters[0][1]' does not accept value '<' for field 'started-by'"),
            (["speed", "<", "1"], "Invalid parameter type for 'filters[0][2]', expected: integer"),
            (["speed", "<", None], "Invalid parameter type for 'filters[0][2]', expected: integer"),
            (["id", "in", "a"], "Invalid parameter type for 'filters[0][2]', expected: array"),
            (["id", "in", ["a", 1]],
             "Invalid parameter type for 'filters[0][2][1]', expected: string"),
            (["status", "=", "runing"], "Parameter 'filters[0][2]' does not accept value 'runing'"),
            (["progress-valid", "=", 1],
             "Invalid parameter type for 'filters[0][2]', expected: boolean"),
            (["time-created", ">", "now"],
             "Invalid parameter type for 'filters[0][2]', expected: number"),
        ]:
            assert c.error("query-jobs", {"filters": [["id", "=", "x"], filters]}) == (
                desc.replace("filters[0]", "filters[1]")), filters
        # A filters argument that is not an array: the schema's own check.
        assert c.error("query-jobs", {"filters": {}}) == (
            "Invalid parameter type for 'filters', expected: array")
        for job in ("bk-a", "bk-b"):
            c.ok("job-cancel", {"id": job})
        c.wait_status("bk-b", "null")


# Section: JOB_PROGRESS


async def _progress_session(socket_path: Path, interval_ms: int | None,
                            until: str) -> list[dict[str, Any]]:
    """The JOB_PROGRESS data (with the event's time) a qemu.qmp client that enabled
    the capability receives until ``until`` concludes."""
    client = qmp.QMPClient("progress")
    client.negotiate = False
    await client.connect(str(socket_path))
    assert "x-qjobd-progress" in client.greeting.QMP.capabilities
    await client.execute("qmp_capabilities", {"enable": ["x-qjobd-progress"]})
    if interval_ms is not None:
        await client.execute("x-qjobd-progress-interval", {"milliseconds": interval_ms})
    seen: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(30):
            async for event in client.events:
                if event["event"] == "JOB_PROGRESS":
                    seen.append({**event["data"], "at": seconds(event["timestamp"])})
                    if event["data"]["id"] == until and event["data"]["status"] == "concluded":
                        break
    finally:
        await client.disconnect()
    return seen


def _throttled(events: list[dict[str, Any]], job: str, interval: float) -> list[dict[str, Any]]:
    """The events about ``job``, checked: at most one per interval until the last."""
    mine = [e for e in events if e["id"] == job]
    assert len(mine) >= 2, mine
    *moving, last = mine
    assert last["status"] == "concluded"
    times = [e["at"] for e in moving]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= interval * 0.95 for gap in gaps), gaps
    assert all(e["status"] != "concluded" for e in moving)
    currents = [e["current"] for e in mine]
    assert currents == sorted(currents)
    return mine


def test_progress_events_throttled_and_only_for_clients_that_asked(
        qjobd_socket: Path, tmp_path: Path) -> None:
    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        with Client(qjobd_socket) as plain:
            fast = asyncio.create_task(_progress_session(qjobd_socket, 150, "bk"))
            default = asyncio.create_task(_progress_session(qjobd_socket, None, "bk"))
            await asyncio.sleep(0.5)  # both negotiated
            plain.ok("blockdev-backup", slow_backup(plain, tmp_path, "bk", speed=2 * MiB,
                                                    size=5 * MiB))
            plain.ok("blockdev-backup", slow_backup(plain, tmp_path, "doomed",
                                                    speed=MiB))
            await asyncio.sleep(0.5)
            plain.ok("job-cancel", {"id": "doomed"})
            plain.wait_status("bk", "null")
            plain.settle(0.3)
            return await fast, await default, plain.events

    fast, default, plain_events = asyncio.run(main())
    assert [e for e in plain_events if e["event"] == "JOB_PROGRESS"] == []
    # The backup moves a chunk every 0.5 s or so: at 150 ms every chunk is seen.
    mine = _throttled(fast, "bk", 0.150)
    assert {e["current"] for e in mine} >= {MiB, 2 * MiB, 3 * MiB, 4 * MiB, 5 * MiB}
    assert 1 < len(_throttled(default, "bk", 0.5)) <= len(mine)
    assert mine[-1]["current"] == mine[-1]["total"] == 5 * MiB
    assert mine[-1]["description"] == "Finished: copied 5 MiB"
    assert "error" not in mine[-1]
    assert any(e["status"] == "running" and e["rate"] > 0 for e in mine)
    assert mine[0]["type"] == "backup"
    for events in (fast, default):
        doomed = [e for e in events if e["id"] == "doomed"]
        assert doomed[-1]["status"] == "concluded"
        assert doomed[-1]["error"] == "Operation canceled"
        assert doomed[-1]["description"] == "Cancelled"


def test_progress_interval_needs_the_capability_and_a_sane_value(qjobd_socket: Path) -> None:
    with Wire(qjobd_socket) as wire:
        wire.negotiate()
        assert wire.cmd("x-qjobd-progress-interval", {"milliseconds": 100}) == {"error": {
            "class": "GenericError", "desc": "Capability 'x-qjobd-progress' is not enabled"}}
    with Wire(qjobd_socket) as wire:
        wire.message()
        assert wire.cmd("qmp_capabilities", {"enable": ["x-qjobd-progress"]}) == {"return": {}}
        for bad in (9, 3_600_001, -1):
            assert wire.cmd("x-qjobd-progress-interval", {"milliseconds": bad}) == {
                "error": {"class": "GenericError", "desc":
                          "Parameter 'milliseconds' expects a value from 10 to 3600000"}}
        assert wire.cmd("x-qjobd-progress-interval", {"milliseconds": 10}) == {"return": {}}


# Section: x-job-wait


def test_job_wait_answers_when_concluded_with_events_meanwhile(qjobd_socket: Path,
                                                               tmp_path: Path) -> None:
    with Client(qjobd_socket) as c, Client(qjobd_socket) as other:
        c.ok("blockdev-backup", slow_backup(c, tmp_path, "bk", speed=4 * MiB, size=4 * MiB))
        c.wire.send(b'{"execute": "x-job-wait", "arguments": {"id": "bk", "timeout": 20}}\n')
        # Another client is served while this one waits.
        started = time.monotonic()
        assert other.ok("query-jobs")[0]["id"] == "bk"
        assert time.monotonic() - started < 0.5
        line = c.wire.raw_reply(timeout=30)
        assert line is not None
        info = json.loads(line)["return"]
        # The job's events reached the waiting client before the answer.
        c._collect()
        assert c.statuses("bk") == ["created", "running", "waiting", "pending",
                                    "concluded", "null"]
        assert info["status"] == "concluded"
        assert info["current-progress"] == 4 * MiB
        assert set(info) == (PLAIN | EXTENSION | {"time-finished"}) - {"started-by"}
        assert info["progress-description"] == "Finished: copied 4 MiB"
        # Gone now: answered from the history, or with job-* wording.
        assert c.ok("x-job-wait", {"id": "bk", "timeout": 1}) == info
        assert c.error("x-job-wait", {"id": "bk", "statuses": ["running"],
                                      "timeout": 1}) == "Job not found"
        assert c.error("x-job-wait", {"id": "nosuch", "timeout": 1}) == "Job not found"


def test_job_wait_for_statuses_and_timeout(qjobd_socket: Path, tmp_path: Path) -> None:
    with Client(qjobd_socket) as c, Client(qjobd_socket) as other:
        c.ok("blockdev-backup", slow_backup(c, tmp_path, "bk", speed=MiB))
        assert c.ok("x-job-wait", {"id": "bk", "statuses": ["running", "paused"],
                                   "timeout": 0})["status"] == "running"
        started = time.monotonic()
        assert c.error("x-job-wait", {"id": "bk", "timeout": 0.3}) == (
            "Timed out after 0.3 seconds waiting for job 'bk' to reach status "
            "concluded, null")
        assert 0.29 <= time.monotonic() - started < 2
        assert c.error("x-job-wait", {"id": "bk", "statuses": ["paused"],
                                      "timeout": -1}) == (
            "Parameter 'timeout' expects a non-negative value")
        c.wire.send(b'{"execute": "x-job-wait", "id": 1, "arguments": {"id": "bk",'
                    b' "statuses": ["paused"], "timeout": 20}}\n')
        other.ok("job-pause", {"id": "bk"})
        line = c.wire.raw_reply(timeout=30)
        assert line is not None
        reply = json.loads(line)
        assert reply["id"] == 1
        assert reply["return"]["status"] == "paused"
        assert reply["return"]["progress-description"].startswith("Paused after ")
        other.ok("job-cancel", {"id": "bk"})
        c.wait_status("bk", "null")


def test_mirror_details_when_ready_and_after_complete(qjobd_socket: Path,
                                                      tmp_path: Path) -> None:
    with Client(qjobd_socket) as c:
        src = make_image(tmp_path / "src.raw", 4 * MiB, data=True)
        dst = make_image(tmp_path / "dst.raw", 4 * MiB)
        c.add_raw("src", src)
        c.add_raw("dst", dst)
        c.ok("blockdev-mirror", {"job-id": "m", "device": "src", "target": "dst",
                                 "sync": "full"})
        info = c.ok("x-job-wait", {"id": "m", "statuses": ["ready"], "timeout": 30})
        assert info["type"] == "mirror"
        assert info["status"] == "ready"
        assert info["progress-description"] == (
            "In sync with its source; waiting for job-complete or job-cancel (4 MiB copied)")
        assert "expected-end" not in info
        assert info["command"] == "blockdev-mirror"
        c.ok("job-complete", {"id": "m"})
        info = c.ok("x-job-wait", {"id": "m", "timeout": 30})
        assert info["status"] == "concluded"
        assert info["rate"] == 0
        assert [s["status"] for s in info["status-history"]] == [
            "created", "running", "ready", "waiting", "pending", "concluded"]


def test_mirror_progress_is_valid_only_once_measured(qjobd_socket: Path,
                                                     tmp_path: Path) -> None:
    """A mirror's total is 0 until it has marked what it must copy, so a client needs
    progress-valid to tell "nothing to do" from "not measured yet".

    A job-pause sent in the same write as blockdev-mirror is run before the job can
    have measured anything: the reader reaches it after at most one schedule point,
    while the job has to pass a schedule point and then wait for worker threads
    (zeroing the target, reading the source's allocation) before it measures, and
    the pause point it then stops at comes before the measurement.
    """
    size = 8 * MiB
    with Client(qjobd_socket) as c:
        c.add_raw("src", make_image(tmp_path / "src.raw", size, data=True))
        c.add_raw("dst", make_image(tmp_path / "dst.raw", size))
        c.wire.send(json.dumps({"execute": "blockdev-mirror", "arguments": {
            "job-id": "m", "device": "src", "target": "dst", "sync": "full"}}) + "\n"
                    + json.dumps({"execute": "job-pause", "arguments": {"id": "m"}}) + "\n")
        for _ in range(2):
            line = c.wire.raw_reply(timeout=30)
            assert line is not None
            assert json.loads(line) == {"return": {}}
        c._collect()
        c.wait_status("m", "paused")
        (info,) = c.ok("query-jobs", {"details": True})
        assert info["status"] == "paused"
        assert info["total-progress"] == 0
        assert info["progress-valid"] is False
        assert c.ok("query-jobs", {"filters": [["progress-valid", "=", False]]}) == [info]
        # Waiting for "running" captures the job the moment it resumes: still unmeasured.
        c.wire.send(b'{"execute": "x-job-wait", "arguments": {"id": "m",'
                    b' "statuses": ["running"], "timeout": 30}}\n')
        with Client(qjobd_socket) as other:
            other.ok("job-resume", {"id": "m"})
        line = c.wire.raw_reply(timeout=30)
        assert line is not None
        resumed = json.loads(line)["return"]
        assert resumed["status"] == "running"
        assert resumed["progress-valid"] is False
        assert resumed["progress-description"] == "Measuring the work to do"
        info = c.ok("x-job-wait", {"id": "m", "statuses": ["ready"], "timeout": 30})
        assert info["progress-valid"] is True
        assert info["total-progress"] == info["current-progress"] == size
        assert c.ok("query-jobs", {"filters": [["progress-valid", "=", False]]}) == []
        c.ok("job-cancel", {"id": "m"})
        c.wait_status("m", "null")


def test_mirror_of_an_empty_image_knows_its_total(qjobd_socket: Path,
                                                  tmp_path: Path) -> None:
    """Nothing to copy is a known total of 0: the job is ready at once and its
    progress valid, unlike a mirror that has not measured yet."""
    with Client(qjobd_socket) as c:
        c.add_raw("src", make_image(tmp_path / "src.raw", 0))
        c.add_raw("dst", make_image(tmp_path / "dst.raw", 0))
        c.ok("blockdev-mirror", {"job-id": "m", "device": "src", "target": "dst",
                                 "sync": "full"})
        info = c.ok("x-job-wait", {"id": "m", "statuses": ["ready"], "timeout": 30})
        assert info["total-progress"] == 0
        assert info["progress-valid"] is True
        c.ok("job-cancel", {"id": "m"})
        c.wait_status("m", "null")


def test_job_wait_of_a_client_that_hangs_up_ends_with_it(qjobd: Daemon,
                                                         tmp_path: Path) -> None:
    """Clients that hang up in the middle of a long x-job-wait take their wait and
    their socket with them at once, not at the timeout or the job's end (a ready
    mirror never ends by itself); the daemon serves on."""
    with Client(qjobd.socket) as c:
        c.add_raw("src", make_image(tmp_path / "src.raw", MiB, data=True))
        c.add_raw("dst", make_image(tmp_path / "dst.raw", MiB))
        c.ok("blockdev-mirror", {"job-id": "m", "device": "src", "target": "dst",
                                 "sync": "full"})
        c.ok("x-job-wait", {"id": "m", "statuses": ["ready"], "timeout": 30})
        descriptors = Path(f"/proc/{qjobd.process.pid}/fd")

        def sockets() -> int:
            """The daemon's open sockets (its other descriptors come and go)."""
            count = 0
            for entry in descriptors.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    count += os.readlink(entry).startswith("socket:")
            return count

        baseline = sockets()
        waiters = [Wire(qjobd.socket) for _ in range(40)]
        for wire in waiters:
            wire.negotiate()
            wire.send(b'{"execute": "x-job-wait", "arguments": {"id": "m", "timeout": 600}}\n')
        # All connected; a wait that has not begun (its request still unread) must
        # end with its client as well as one that has.
        assert c.ok("query-jobs")[0]["status"] == "ready"
        assert sockets() == baseline + len(waiters)
        for wire in waiters:
            wire.close()
        deadline = time.monotonic() + 60  # only guards against a hang
        while sockets() > baseline:
            assert time.monotonic() < deadline, "the daemon kept the waiters' sockets"
            time.sleep(0.02)
        assert c.ok("x-job-wait", {"id": "m", "statuses": ["ready"], "timeout": 1})[
            "status"] == "ready"
        # Shutting down only its sending side is no hangup: the client still reads.
        with Wire(qjobd.socket) as wire:
            wire.negotiate()
            wire.send(b'{"execute": "x-job-wait", "arguments": {"id": "m", "timeout": 0.5}}\n')
            wire.sock.shutdown(socket.SHUT_WR)
            assert wire.reply(timeout=30) == {"error": {"class": "GenericError", "desc": (
                "Timed out after 0.5 seconds waiting for job 'm' to reach status "
                "concluded, null")}}
        c.ok("job-cancel", {"id": "m"})
        c.wait_status("m", "null")

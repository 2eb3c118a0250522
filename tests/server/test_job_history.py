"""The job history (x-query-job-history) against a real daemon: bounded, kept across
restarts, jobs interrupted by a kill marked, broken or locked files survived."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from helpers.client import Client
from helpers.daemons import start_qjobd, stop
from helpers.images import MiB, make_image
from helpers.wire import Wire

INTERRUPTED = "qjobd stopped while the job was running"


def failing_jobs(c: Client, count: int, start: int = 0) -> None:
    """``count`` snapshot-delete jobs (they fail at once: no devices), pipelined."""
    c.wire.send("".join(
        json.dumps({"execute": "snapshot-delete",
                    "arguments": {"job-id": f"j{n}", "tag": "t", "devices": []}}) + "\n"
        for n in range(start, start + count)))
    for _ in range(count):
        assert c.wire.raw_reply(timeout=30) is not None
    c.ok("x-job-wait", {"id": f"j{start + count - 1}", "timeout": 30})


def history(c: Client, **arguments: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = c.ok("x-query-job-history", arguments)
    return result


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM jobs").fetchone()
    return int(count)


def stop_and_log(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    return err.decode()


def test_bounded_and_kept_across_restarts(tmp_path: Path) -> None:
    socket_path = tmp_path / "q.sock"
    store = tmp_path / "state" / "jobs.sqlite3"
    process = start_qjobd(socket_path, "--history", str(store))
    try:
        with Client(socket_path) as c:
            c.ok("blockdev-create", {"job-id": "mk", "options": {
                "driver": "file", "filename": str(tmp_path / "new.raw"), "size": MiB}})
            c.ok("x-job-wait", {"id": "mk", "timeout": 30})
            failing_jobs(c, 1005)
            found = history(c)
            assert len(found) == 1000  # the bound: mk and j0..j4 are gone
            assert [info["id"] for info in found[:2]] == ["j1004", "j1003"]
            assert found[-1]["id"] == "j5"
            assert {info["status"] for info in found} == {"concluded"}
            assert found[0]["error"] == "At least one device is required for snapshot"
            assert [entry["status"] for entry in found[0]["status-history"]] == [
                "created", "running", "aborting", "concluded"]
            assert [info["id"] for info in history(c, limit=2)] == ["j1004", "j1003"]
            assert history(c, limit=0) == []
            assert [info["id"] for info in history(
                c, filters=[["id", "^", "j99"], ["id", "$", "7"]])] == ["j997"]
            assert c.error("x-query-job-history", {"limit": -1}) == (
                "Parameter 'limit' expects a non-negative value")
            assert c.error("x-query-job-history", {"filters": [["x", "=", 1]]}) == (
                "Parameter 'filters[0][0]' does not accept value 'x'")
            before = history(c)
        assert rows(store) == 1000
    finally:
        stop(process)
    assert store.stat().st_mode & 0o777 == 0o600
    process = start_qjobd(socket_path, "--history", str(store))
    try:
        with Client(socket_path) as c:
            assert c.ok("query-jobs") == []
            assert history(c) == before
            # New jobs go on top; the bound still holds.
            c.ok("blockdev-create", {"job-id": "mk2", "options": {
                "driver": "file", "filename": str(tmp_path / "new2.raw"), "size": MiB}})
            c.ok("x-job-wait", {"id": "mk2", "timeout": 30})
            found = history(c)
            assert [info["id"] for info in found[:2]] == ["mk2", "j1004"]
            assert found[0]["progress-description"] == "Finished"
            assert found[0]["status"] == "concluded"
            assert len(found) == 1000
    finally:
        stop(process)
    assert rows(store) == 1000


def test_default_place_is_next_to_the_socket(qjobd_socket: Path) -> None:
    with Client(qjobd_socket) as c:
        failing_jobs(c, 1)
        assert [info["id"] for info in history(c)] == ["j0"]
    assert (qjobd_socket.parent / "qjobd.sock.state" / "history.sqlite3").is_file()


def test_jobs_running_at_a_kill_show_as_failed(tmp_path: Path) -> None:
    socket_path = tmp_path / "q.sock"
    store = tmp_path / "h.sqlite3"
    src = make_image(tmp_path / "src.raw", 8 * MiB, data=True)
    dst = make_image(tmp_path / "dst.raw", 8 * MiB)
    process = start_qjobd(socket_path, "--history", str(store))
    try:
        with Client(socket_path) as c:
            failing_jobs(c, 1)
            c.add_raw("src", src)
            c.add_raw("dst", dst)
            c.wire.send(json.dumps({"execute": "blockdev-backup", "id": "started-here",
                                    "arguments": {"job-id": "bk", "device": "src",
                                                  "target": "dst", "sync": "full",
                                                  "speed": MiB}}) + "\n")
            assert c.wire.raw_reply(timeout=30) is not None
            c.ok("x-job-wait", {"id": "bk", "statuses": ["running"], "timeout": 10})
            # Written once the writer thread had its turn.
            deadline = time.monotonic() + 10
            while [i["status"] for i in history(c)] != ["running", "concluded"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        process.kill()
        process.wait(10)
    finally:
        stop(process)
    socket_path.unlink()
    process = start_qjobd(socket_path, "--history", str(store))
    try:
        with Client(socket_path) as c:
            interrupted, done = history(c)
        assert interrupted["id"] == "bk"
        assert interrupted["status"] == "concluded"
        assert interrupted["error"] == INTERRUPTED
        assert interrupted["progress-description"] == f"Failed: {INTERRUPTED}"
        assert interrupted["started-by"] == "started-here"
        assert interrupted["command"] == "blockdev-backup"
        assert [s["status"] for s in interrupted["status-history"]] == ["created", "running"]
        assert "expected-end" not in interrupted
        # A job that had finished keeps its own outcome.
        assert done["id"] == "j0"
        assert done["error"] == "At least one device is required for snapshot"
    finally:
        log = stop_and_log(process)
    assert "1 job(s) were running when qjobd stopped" in log


def test_corrupt_history_file_is_logged_and_jobs_run(tmp_path: Path) -> None:
    socket_path = tmp_path / "q.sock"
    store = tmp_path / "h.sqlite3"
    store.write_bytes(b"this is not a database, " * 1000)
    process = start_qjobd(socket_path, "--history", str(store))
    try:
        with Client(socket_path) as c:
            c.ok("blockdev-create", {"job-id": "mk", "options": {
                "driver": "file", "filename": str(tmp_path / "new.raw"), "size": MiB}})
            info = c.ok("x-job-wait", {"id": "mk", "timeout": 30})
            assert "error" not in info
            assert c.error("x-query-job-history") == (
                "Job history is not available: file is not a database")
            assert c.ok("query-jobs")[0]["status"] == "concluded"
    finally:
        log = stop_and_log(process)
    assert process.returncode == 0
    # Logged once, however often it was tried.
    assert log.count("file is not a database") == 1, log


def test_locked_history_file_holds_up_nothing(tmp_path: Path) -> None:
    socket_path = tmp_path / "q.sock"
    store = tmp_path / "h.sqlite3"
    locker = sqlite3.connect(store, isolation_level=None)
    locker.execute("CREATE TABLE other (x)")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("INSERT INTO other VALUES (1)")
    process = start_qjobd(socket_path, "--history", str(store))
    try:
        with Client(socket_path) as c, Wire(socket_path) as other:
            other.negotiate()
            started = time.monotonic()
            c.ok("blockdev-create", {"job-id": "mk", "options": {
                "driver": "file", "filename": str(tmp_path / "new.raw"), "size": MiB}})
            c.ok("x-job-wait", {"id": "mk", "timeout": 30})
            assert time.monotonic() - started < 2
            c.wire.send(b'{"execute": "x-query-job-history"}\n')
            # Another client is not held up meanwhile.
            assert other.cmd("query-jobs")["return"][0]["id"] == "mk"
            reply = json.loads(c.wire.raw_reply(timeout=10) or b"null")
            assert reply == {"error": {"class": "GenericError", "desc":
                             "Job history is not available: database is locked"}}
            assert time.monotonic() - started < 4
            locker.execute("COMMIT")
            locker.close()
            # The writer tries again, and what was pending is kept.
            found = history(c)
            assert [info["id"] for info in found] == ["mk"]
            assert found[0]["status"] == "concluded"
    finally:
        log = stop_and_log(process)
    assert "database is locked" in log
    assert "works again" in log

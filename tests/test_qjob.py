"""qjob, the operator's CLI, against real daemons: through a real terminal (a pty)
for people, with --json for scripts, and its exit statuses.

The progress test starts a rate-limited backup (8 MiB at 4 MiB/s) and watches it
with ``qjob watch`` in a pty: rich's progress bars must show it moving, then done.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client
from helpers.daemons import Daemon
from helpers.qcow2 import (
    check,
    info,
    make_qcow2,
    qcow2_opts,
    qemu_io,
    raw_content,
    snapshot_listing,
)
from helpers.terminal import plain, run_in_terminal

QJOB = [sys.executable, "-m", "qjobd.qjob.main"]


def qjob(socket: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QJOB, "--socket", str(socket), *args], capture_output=True,
                          text=True, timeout=timeout)


def data_image(path: Path, mib: int) -> Path:
    path.write_bytes(os.urandom(mib << 20))  # data, not holes: copies take time
    return path


def add_source(socket: Path, tmp_path: Path, mib: int = 8, node: str = "src") -> None:
    with Client(socket) as client:
        client.add_raw(node, data_image(tmp_path / f"{node}.raw", mib))


def test_watch_shows_progress_bars_in_a_terminal(qjobd_socket: Path, tmp_path: Path) -> None:
    add_source(qjobd_socket, tmp_path)
    started = qjob(qjobd_socket, "backup", "src", str(tmp_path / "dst.raw"), "--job-id", "bk",
                   "--speed", str(4 << 20))
    assert (started.returncode, started.stdout) == (0, "started job bk\n")
    status, output = run_in_terminal([*QJOB, "--socket", str(qjobd_socket), "watch",
                                      "--interval", "0.2"])
    text = plain(output)
    assert status == 0, text
    assert "\x1b[" in output  # a terminal gets a live display, not plain lines
    assert "bk (backup)" in text
    assert "━" in text  # the bar
    moving = {int(p) for p in re.findall(r"(\d+)%", text)}
    assert moving & set(range(1, 100)), text  # seen part way, not only at the end
    assert text.rstrip().endswith("bk backup done 100%")
    assert (tmp_path / "dst.raw").read_bytes() == (tmp_path / "src.raw").read_bytes()


def test_backup_wait_in_a_terminal_and_list_json(qjobd_socket: Path, tmp_path: Path) -> None:
    add_source(qjobd_socket, tmp_path, mib=4)
    status, output = run_in_terminal([*QJOB, "--socket", str(qjobd_socket), "backup", "src",
                                      str(tmp_path / "dst.raw"), "--job-id", "bk", "--speed",
                                      str(8 << 20), "--wait"])
    assert status == 0
    assert plain(output).rstrip().endswith("bk backup done 100%")
    listed = qjob(qjobd_socket, "list", "--json")
    assert (listed.returncode, json.loads(listed.stdout)) == (0, [])  # auto-dismissed


def test_list_json_and_verbs(qjobd_socket: Path, tmp_path: Path) -> None:
    add_source(qjobd_socket, tmp_path)
    assert qjob(qjobd_socket, "backup", "src", str(tmp_path / "dst.raw"), "--job-id", "bk",
                "--speed", "65536").returncode == 0
    assert qjob(qjobd_socket, "pause", "bk").returncode == 0
    [job] = json.loads(qjob(qjobd_socket, "list", "--json").stdout)
    assert (job["id"], job["type"], job["total-progress"]) == ("bk", "backup", 8 << 20)
    assert job["status"] in ("paused", "standby")
    status, output = run_in_terminal([*QJOB, "--socket", str(qjobd_socket), "list"])
    assert status == 0
    assert "│ bk │ backup │" in plain(output)
    assert qjob(qjobd_socket, "resume", "bk").returncode == 0
    cancelled = qjob(qjobd_socket, "cancel", "bk")
    assert (cancelled.returncode, cancelled.stdout) == (0, "cancel: bk\n")
    waited = qjob(qjobd_socket, "wait", "bk", "--json")
    # Cancelled is not success; gone already (auto-dismiss) is "no such job".
    assert waited.returncode == 1
    assert "bk" in waited.stdout + waited.stderr


def test_wait_for_a_failing_job_exits_1(qjobd_socket: Path, tmp_path: Path) -> None:
    image = data_image(tmp_path / "a.raw", 2)
    with Client(qjobd_socket) as client:
        client.add_blkdebug("src", image, [{"event": "read_aio", "errno": 5}])
        client.ok("drive-backup", {"job-id": "bk", "device": "src", "sync": "full",
                                   "target": str(tmp_path / "dst.raw"), "format": "raw",
                                   "auto-dismiss": False, "speed": 1 << 20})
        waited = qjob(qjobd_socket, "wait", "bk", "--json")
        assert waited.returncode == 1, waited.stderr
        result = json.loads(waited.stdout)
        assert result["id"] == "bk"
        assert "error" in result
        plain_wait = qjob(qjobd_socket, "wait", "bk")
        assert plain_wait.returncode == 1
        assert plain_wait.stdout.startswith("bk backup failed: ")


def test_wait_timeout_and_missing_job(qjobd_socket: Path, tmp_path: Path) -> None:
    add_source(qjobd_socket, tmp_path)
    assert qjob(qjobd_socket, "backup", "src", str(tmp_path / "dst.raw"), "--job-id", "bk",
                "--speed", "65536").returncode == 0
    timed_out = qjob(qjobd_socket, "wait", "bk", "--timeout", "0.3")
    assert timed_out.returncode == 1
    assert "did not finish in 0.3 s" in timed_out.stderr
    missing = qjob(qjobd_socket, "wait", "nothing")
    assert (missing.returncode, missing.stderr) == (1, "qjob: no job 'nothing'\n")
    assert qjob(qjobd_socket, "cancel", "bk").returncode == 0


def test_usage_and_connection_errors_exit_2(qjobd_socket: Path, tmp_path: Path) -> None:
    nobody = qjob(tmp_path / "nobody.sock", "list")
    assert nobody.returncode == 2
    assert nobody.stderr.startswith(f"qjob: cannot connect to {tmp_path / 'nobody.sock'}")
    assert qjob(qjobd_socket, "wait").returncode == 2
    assert qjob(qjobd_socket, "frobnicate").returncode == 2
    not_json = qjob(qjobd_socket, "raw", "{execute")
    assert not_json.returncode == 2
    assert "raw: not JSON" in not_json.stderr
    refused = qjob(qjobd_socket, "pause", "nothing")
    assert refused.returncode == 1
    assert refused.stderr == "qjob: pause: Job not found\n"  # QEMU's words


def test_default_socket_is_the_daemons(monkeypatch: pytest.MonkeyPatch) -> None:
    from qjobd.server.listener import default_socket_path

    shown = subprocess.run([*QJOB, "--help"], capture_output=True, text=True, check=True)
    assert f"(default: {default_socket_path()})" in " ".join(shown.stdout.split())


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


# qjobd's extensions: qjob must go through them, and it shows.


def test_watch_against_qjobd_is_driven_by_pushed_progress(qjobd_socket: Path,
                                                          tmp_path: Path) -> None:
    # A poll an hour apart never comes: only JOB_PROGRESS events (with their rate,
    # which query-jobs without details lacks) can show the backup part way.
    add_source(qjobd_socket, tmp_path, mib=4)
    assert qjob(qjobd_socket, "backup", "src", str(tmp_path / "dst.raw"), "--job-id", "bk",
                "--speed", str(2 << 20)).returncode == 0
    watched = qjob(qjobd_socket, "watch", "--json", "--interval", "3600", timeout=20)
    assert watched.returncode == 0, watched.stderr
    shots = json_lines(watched.stdout)
    assert {view["id"] for shot in shots for view in shot} == {"bk"}
    # The first line is the one poll; every later one came with an event.
    part_way = [view for shot in shots[1:] for view in shot
                if 0 < view["current-progress"] < 4 << 20]
    assert part_way, shots
    assert all(isinstance(view.get("rate"), int) and view["rate"] > 0 for view in part_way)
    assert shots[-1][0]["current-progress"] == 4 << 20
    assert shots[-1][0]["status"] in ("concluded", "null")
    # A line says something new: an idle moment prints nothing.
    assert all(a != b for a, b in itertools.pairwise(shots))


def test_wait_against_qjobd_uses_x_job_wait(qjobd_socket: Path, tmp_path: Path) -> None:
    add_source(qjobd_socket, tmp_path, mib=1)
    done = qjob(qjobd_socket, "backup", "src", str(tmp_path / "dst.raw"), "--job-id", "bk",
                "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert qjob(qjobd_socket, "list", "--json").stdout == "[]\n"  # dismissed: gone
    # Job events cannot tell of a job that is gone (against QSD this is "no job");
    # x-job-wait answers from the history, with its detailed JobInfo.
    waited = qjob(qjobd_socket, "wait", "bk", "--json")
    assert waited.returncode == 0, waited.stderr
    info = json.loads(waited.stdout)
    assert (info["id"], info["type"], info["status"]) == ("bk", "backup", "concluded")
    assert info["command"] == "drive-backup"
    assert {"time-created", "time-started", "time-finished", "status-history"} <= set(info)
    assert "error" not in info
    plain_wait = qjob(qjobd_socket, "wait", "bk")
    assert (plain_wait.returncode, plain_wait.stdout) == (0, "bk backup done 100%\n")


def test_history_lists_finished_jobs(qjobd_socket: Path, tmp_path: Path) -> None:
    add_source(qjobd_socket, tmp_path, mib=1)
    assert qjob(qjobd_socket, "backup", "src", str(tmp_path / "ok.raw"), "--job-id", "good",
                "--wait").returncode == 0
    with Client(qjobd_socket) as client:
        client.add_blkdebug("bad", data_image(tmp_path / "bad.raw", 1),
                            [{"event": "read_aio", "errno": 5}])
    failed = qjob(qjobd_socket, "backup", "bad", str(tmp_path / "no.raw"), "--job-id",
                  "broken", "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    history = qjob(qjobd_socket, "history", "--json")
    assert history.returncode == 0, history.stderr
    broken, good = json.loads(history.stdout)  # newest first
    assert (good["id"], good["type"], good["status"]) == ("good", "backup", "concluded")
    assert good["current-progress"] == good["total-progress"] == 1 << 20
    assert good["command"] == "drive-backup"
    assert good["arguments"]["target"] == str(tmp_path / "ok.raw")
    assert good["time-created"]["seconds"] <= good["time-finished"]["seconds"]
    assert [step["status"] for step in good["status-history"]][-1] == "concluded"
    assert "error" not in good
    assert (broken["id"], broken["status"]) == ("broken", "concluded")
    assert broken["error"]
    [newest] = json.loads(qjob(qjobd_socket, "history", "--json", "--limit", "1").stdout)
    assert newest["id"] == "broken"
    status, output = run_in_terminal([*QJOB, "--socket", str(qjobd_socket), "history"])
    text = plain(output)
    assert status == 0, text
    assert "finished jobs" in text
    finished = time.strftime("%Y-%m-%d %H:%M", time.localtime(good["time-finished"]["seconds"]))
    row = next(line for line in text.splitlines() if "│ good" in line)
    assert re.search(r"│ good\s+│ backup\s+│ concluded\s+│ " + finished, row), row
    assert "100%" in row
    row = next(line for line in text.splitlines() if "│ broken" in line)
    assert broken["error"][:20] in row


# The other subcommands, end to end on real images; qemu-img is the oracle, and
# looks only once the daemon is gone (qcow2 tables are written back at close).


def add_qcow2(socket: Path, node: str, image: Path) -> None:
    with Client(socket) as client:
        client.ok("blockdev-add", qcow2_opts(node, image))


def chain(tmp_path: Path) -> tuple[Path, Path, Path]:
    """base <- mid <- top, 4 MiB: each writes a stripe of its own, over the others'."""
    base = make_qcow2(tmp_path / "base.qcow2", 4 << 20)
    qemu_io(base, "write -P 1 0 2M")
    mid = make_qcow2(tmp_path / "mid.qcow2", 4 << 20, backing=base)
    qemu_io(mid, "write -P 2 1M 1M")
    top = make_qcow2(tmp_path / "top.qcow2", 4 << 20, backing=mid)
    qemu_io(top, "write -P 3 1536k 2M")
    return base, mid, top


def test_external_snapshot(qjobd: Daemon, tmp_path: Path) -> None:
    disk = make_qcow2(tmp_path / "disk.qcow2", 1 << 20)
    add_qcow2(qjobd.socket, "disk", disk)
    # Brackets in a path are not rich markup, and the line is not folded.
    overlay = tmp_path / ("a-rather-long-file-name-for-an-overlay-" * 2 + "[red].qcow2")
    taken = qjob(qjobd.socket, "snapshot", "disk", str(overlay))
    assert (taken.returncode, taken.stderr) == (0, "")
    assert taken.stdout == f"snapshot {overlay} of disk taken\n"
    assert info(overlay)["full-backing-filename"] == str(disk)
    assert info(overlay)["backing-filename-format"] == "qcow2"
    refused = qjob(qjobd.socket, "snapshot", "nothing", str(tmp_path / "x.qcow2"))
    assert refused.returncode == 1
    assert refused.stderr.startswith("qjob: snapshot: ")
    both = qjob(qjobd.socket, "snapshot", "disk", "s1", "--internal", "--node-name", "n")
    assert both.returncode == 2
    with Client(qjobd.socket) as client:
        qjobd.quit(client)
    check(overlay)
    check(disk)


def test_external_snapshot_names_the_overlay(qjobd: Daemon, tmp_path: Path) -> None:
    # An overlay that a job uses stays open, under the node name asked for.
    add_source(qjobd.socket, tmp_path, mib=2)
    overlay = tmp_path / "overlay.qcow2"
    with Client(qjobd.socket) as client:
        client.ok("drive-backup", {"job-id": "bk", "device": "src", "sync": "full",
                                   "target": str(tmp_path / "dst.raw"), "format": "raw",
                                   "speed": 65536})
        taken = qjob(qjobd.socket, "snapshot", "src", str(overlay), "--node-name", "ov")
        assert taken.returncode == 0, taken.stderr
        names = {node["node-name"]
                 for node in client.ok("query-named-block-nodes", {"flat": True})}
        assert "ov" in names
        assert qjob(qjobd.socket, "cancel", "bk").returncode == 0
        qjobd.quit(client)
    assert info(overlay)["full-backing-filename"] == str(tmp_path / "src.raw")


def test_internal_snapshot(qjobd: Daemon, tmp_path: Path) -> None:
    disk = make_qcow2(tmp_path / "disk.qcow2", 1 << 20)
    qemu_io(disk, "write -P 7 0 64k")
    add_qcow2(qjobd.socket, "disk", disk)
    taken = qjob(qjobd.socket, "snapshot", "disk", "before-upgrade", "--internal")
    assert (taken.returncode, taken.stdout) == (0, "snapshot before-upgrade of disk taken\n")
    again = qjob(qjobd.socket, "snapshot", "disk", "before-upgrade", "--internal")
    assert again.returncode == 1  # the name is taken
    with Client(qjobd.socket) as client:
        qjobd.quit(client)
    assert check(disk).get("leaks", 0) == 0
    assert snapshot_listing(disk) == [("1", "before-upgrade")]


def test_commit_into_a_base_then_complete(qjobd: Daemon, tmp_path: Path) -> None:
    base, mid, top = chain(tmp_path)
    before = raw_content(top, tmp_path / "before.raw")
    base_before = raw_content(base, tmp_path / "base-before.raw")
    add_qcow2(qjobd.socket, "top", top)
    # top is the active layer: the commit gets ready and waits; --wait stops there.
    ready = qjob(qjobd.socket, "commit", "top", "--base", str(mid), "--job-id", "c",
                 "--wait", "--json", timeout=20)
    assert ready.returncode == 0, ready.stderr
    last = json_lines(ready.stdout)[-1]
    assert [(v["id"], v["type"], v["status"]) for v in last] == [("c", "commit", "ready")]
    done = qjob(qjobd.socket, "complete", "c")
    assert (done.returncode, done.stdout) == (0, "complete: c\n")
    waited = qjob(qjobd.socket, "wait", "c")
    assert (waited.returncode, waited.stdout) == (0, "c commit done 100%\n")
    with Client(qjobd.socket) as client:
        qjobd.quit(client)
    check(mid)
    assert raw_content(mid, tmp_path / "after.raw") == before  # top's data went into mid
    assert raw_content(base, tmp_path / "base-after.raw") == base_before  # not further


def test_commit_of_nothing_is_refused(qjobd_socket: Path, tmp_path: Path) -> None:
    add_qcow2(qjobd_socket, "lone", make_qcow2(tmp_path / "lone.qcow2", 1 << 20))
    refused = qjob(qjobd_socket, "commit", "lone")  # no backing file to commit into
    assert refused.returncode == 1
    assert refused.stderr.startswith("qjob: commit: ")
    assert qjob(qjobd_socket, "list", "--json").stdout == "[]\n"


def test_stream_down_to_a_base(qjobd: Daemon, tmp_path: Path) -> None:
    base, _mid, top = chain(tmp_path)
    before = raw_content(top, tmp_path / "before.raw")
    add_qcow2(qjobd.socket, "top", top)
    status, output = run_in_terminal([*QJOB, "--socket", str(qjobd.socket), "stream", "top",
                                      "--base", str(base), "--job-id", "st", "--wait"])
    assert status == 0, plain(output)
    assert plain(output).rstrip().endswith("st stream done 100%")
    with Client(qjobd.socket) as client:
        qjobd.quit(client)
    check(top)
    assert info(top)["full-backing-filename"] == str(base)  # mid left the chain
    assert raw_content(top, tmp_path / "after.raw") == before


def test_mirror_then_complete(qjobd: Daemon, tmp_path: Path) -> None:
    add_source(qjobd.socket, tmp_path, mib=2)
    target = tmp_path / "copy.qcow2"
    with Client(qjobd.socket) as client:  # listening before the job can get ready
        started = qjob(qjobd.socket, "mirror", "src", str(target), "--format", "qcow2",
                       "--job-id", "mi", "--json")
        assert (started.returncode, json.loads(started.stdout)) == (0, {"id": "mi"})
        client.wait_status("mi", "ready")
        early = qjob(qjobd.socket, "dismiss", "mi")  # not concluded yet: refused
        assert early.returncode == 1
        [job] = json.loads(qjob(qjobd.socket, "list", "--json").stdout)
        assert (job["id"], job["type"], job["status"]) == ("mi", "mirror", "ready")
        done = qjob(qjobd.socket, "complete", "mi")
        assert (done.returncode, done.stdout) == (0, "complete: mi\n")
        waited = qjob(qjobd.socket, "wait", "mi", "--json")
        assert waited.returncode == 0, waited.stderr
        assert json.loads(waited.stdout)["status"] == "concluded"
        assert qjob(qjobd.socket, "complete", "mi").returncode == 1  # gone
        qjobd.quit(client)
    check(target)
    assert raw_content(target, tmp_path / "copy.raw") == (tmp_path / "src.raw").read_bytes()


def test_finalize_and_dismiss_by_hand(qjobd: Daemon, tmp_path: Path) -> None:
    # qjob starts jobs with QEMU's defaults; the test client asks for the manual ones.
    add_source(qjobd.socket, tmp_path, mib=1)
    target = tmp_path / "dst.raw"
    with Client(qjobd.socket) as client:
        client.ok("drive-backup", {"job-id": "bk", "device": "src", "sync": "full",
                                   "target": str(target), "format": "raw",
                                   "auto-finalize": False, "auto-dismiss": False})
        client.wait_status("bk", "pending")
        pending = qjob(qjobd.socket, "wait", "bk", "--timeout", "0.5")
        assert pending.returncode == 1  # pending is not finished
        assert "did not finish in 0.5 s" in pending.stderr
        early = qjob(qjobd.socket, "dismiss", "bk")
        assert early.returncode == 1
        assert early.stderr.startswith("qjob: dismiss: ")
        finalized = qjob(qjobd.socket, "finalize", "bk")
        assert (finalized.returncode, finalized.stdout) == (0, "finalize: bk\n")
        client.wait_status("bk", "concluded")
        waited = qjob(qjobd.socket, "wait", "bk", "--json")
        assert waited.returncode == 0, waited.stderr
        assert json.loads(waited.stdout)["status"] == "concluded"
        [job] = json.loads(qjob(qjobd.socket, "list", "--json").stdout)
        assert (job["id"], job["status"]) == ("bk", "concluded")
        dismissed = qjob(qjobd.socket, "dismiss", "bk")
        assert (dismissed.returncode, dismissed.stdout) == (0, "dismiss: bk\n")
        assert qjob(qjobd.socket, "list", "--json").stdout == "[]\n"
        again = qjob(qjobd.socket, "dismiss", "bk")
        assert (again.returncode, again.stderr) == (1, "qjob: dismiss: Job not found\n")
        qjobd.quit(client)
    assert target.read_bytes() == (tmp_path / "src.raw").read_bytes()


def test_wait_flag_follows_only_its_job(qjobd_socket: Path, tmp_path: Path) -> None:
    # Another job that will not end soon (paused) must not hold up --wait.
    add_source(qjobd_socket, tmp_path, mib=2, node="slow")
    add_source(qjobd_socket, tmp_path, mib=1)
    assert qjob(qjobd_socket, "backup", "slow", str(tmp_path / "slow.raw"), "--job-id",
                "other", "--speed", "65536").returncode == 0
    assert qjob(qjobd_socket, "pause", "other").returncode == 0
    job_id = "a-job-id-long-enough-that-a-line-about-it-passes-eighty-columns-" * 2
    done = qjob(qjobd_socket, "backup", "src", str(tmp_path / "dst.raw"), "--job-id", job_id,
                "--wait", timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"{job_id} backup done 100%\n")  # one line, not folded
    assert qjob(qjobd_socket, "cancel", "other").returncode == 0


def test_losing_the_daemon_exits_2(qjobd: Daemon, tmp_path: Path) -> None:
    add_source(qjobd.socket, tmp_path, mib=2)
    with Client(qjobd.socket) as client:
        client.ok("drive-backup", {"job-id": "bk", "device": "src", "sync": "full",
                                   "target": str(tmp_path / "dst.raw"), "format": "raw",
                                   "speed": 65536})
        followers = [subprocess.Popen([*QJOB, "--socket", str(qjobd.socket), *args],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
                     for args in (["watch", "--json", "--interval", "3600"], ["wait", "bk"])]
        assert followers[0].stdout is not None
        followers[0].stdout.readline()  # watching
        time.sleep(0.5)  # waiting too
        qjobd.quit(client)
    for follower in followers:
        out, err = follower.communicate(timeout=10)
        assert (follower.returncode, err) == (2, f"qjob: lost the connection to "
                                                 f"{qjobd.socket}\n"), out


# Against qemu-storage-daemon: the commands QEMU has.


def test_raw_gives_the_same_replies_on_both(qjobd_socket: Path, qsd_socket: Path) -> None:
    for message in ('{"execute": "query-jobs"}',
                    '{"execute": "job-pause", "arguments": {"id": "x"}}',
                    '{"execute": "blockdev-del", "arguments": {"node-name": "x"}}'):
        ours, theirs = qjob(qjobd_socket, "raw", message), qjob(qsd_socket, "raw", message)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), message


def test_list_and_wait_against_qsd(qsd_socket: Path, tmp_path: Path) -> None:
    # QSD's monitor serves one connection at a time: each step connects anew.
    add_source(qsd_socket, tmp_path, mib=4)
    assert qjob(qsd_socket, "list", "--json").stdout == "[]\n"
    started = qjob(qsd_socket, "backup", "src", str(tmp_path / "dst.raw"), "--job-id", "bk",
                   "--speed", str(2 << 20))
    assert started.returncode == 0, started.stderr
    [job] = json.loads(qjob(qsd_socket, "list", "--json").stdout)
    assert (job["id"], job["type"], job["status"]) == ("bk", "backup", "running")
    status, output = run_in_terminal([*QJOB, "--socket", str(qsd_socket), "wait", "bk"])
    assert status == 0
    assert plain(output).strip() == "bk backup done 100%"
    assert (tmp_path / "dst.raw").read_bytes() == (tmp_path / "src.raw").read_bytes()
    # No x-job-wait: job events cannot tell of a job that is gone.
    gone = qjob(qsd_socket, "wait", "bk")
    assert (gone.returncode, gone.stderr) == (1, "qjob: no job 'bk'\n")
    history = qjob(qsd_socket, "history")
    assert history.returncode == 2
    assert "keeps no job history" in history.stderr

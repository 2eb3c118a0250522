"""qemu-storage-daemon's command line: qjobd run side by side with QSD.

Scripts written for QSD must work with ``qjobd`` in its place, so the same argument
lists go to both programs: bad ones must fail with the same message (``qjobd:`` for
the program name) and status; good ones must build the same nodes and answer the
same QMP, here piped over the stdio monitor.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client, mask_node_names, without_drain_pairs
from helpers.daemons import qsd_available, stop, wait_for_socket

needs_qsd = pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")

QJOBD = [sys.executable, "-m", "qjobd"]
QSD = ["qemu-storage-daemon"]


def run(program: list[str], args: list[str], cwd: Path) -> tuple[int, str]:
    """Run to its end (bad command lines end at once); (status, stderr)."""
    result = subprocess.run([*program, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=30)
    return result.returncode, result.stderr.replace("qemu-storage-daemon:", "qjobd:")


def bad_command_lines(d: str) -> list[list[str]]:
    raw = f"driver=raw,node-name=r,file.driver=file,file.filename={d}/img.raw"
    sock = f"socket,path={d}/m.sock,server=on,wait=off,id=c"
    return [
        ["--bogus"], ["-x"], ["-T"], ["--help=x"], ["--blockdev"], ["stray"], ["-"],
        ["--daemonize", "--bogus"],
        ["--blockdev", "driver=nope"], ["--blo", "driver=nope"], ["--blockdev=driver=nope"],
        ["--blockdev", "driver=file"], ["--blockdev", f"file,filename={d}/img.raw"],
        ["--blockdev", ","], ["--blockdev", "help"], ["--blockdev", "driver=file,1=x"],
        ["--blockdev", "driver=file,,x=1"], ["--blockdev", "[1]"],
        ["--blockdev", f"{raw},offset=abc"], ["--blockdev", f"{raw},size=1k"],
        ["--blockdev", f"{raw},size=-1"], ["--blockdev", f"{raw},size=0x100"],
        ["--blockdev", f"{raw},bogus=1"], ["--blockdev", f"{raw},file.x.y=1,file.x=2"],
        ["--blockdev", f"{raw},file.cache.direct=maybe"],
        ["--blockdev", "driver=raw,file=img,file.x=1"],
        ["--blockdev", "driver=file,filename=/nonexistent/x,node-name=n"],
        ["--blockdev", f"driver=file,filename={d}/img.raw,node-name=a",
         "--blockdev", f"driver=file,filename={d}/img.raw,node-name=a"],
        ["--blockdev", '{"driver": "file", "filename": "x", "node-name": 1}'],
        ["--blockdev", '{"driver": "file"'],
        ["--chardev"], ["--chardev", "foo"], ["--chardev", "bogus,id=c"],
        ["--chardev", "socket,id=c"], ["--chardev", "id=x"],
        ["--chardev", f"socket,path={d}/m.sock,id=1x,server=on,wait=off"],
        ["--chardev", f"{sock},bogus=1"], ["--chardev", f"{sock},server=maybe"],
        ["--chardev", f"socket,path={d}/none/m.sock,server=on,wait=off,id=c"],
        ["--chardev", "stdio,id=s", "--chardev", "stdio,id=t"],
        ["--chardev", "stdio,id=s", "--monitor", "s", "--daemonize"],
        ["--monitor", "c"], ["--monitor", "chardev=c,bogus=1"], ["--monitor="],
        ["--chardev", sock, "--monitor", "c2"],
        ["--chardev", sock, "--monitor", "chardev=c,mode=readline"],
        ["--chardev", sock, "--monitor", "chardev=c,pretty=maybe"],
        ["--chardev", sock, "--monitor", "c", "--monitor", "c"],
        ["--chardev", sock, "--monitor", "c,bogus"],
        ["--pidfile", "/nonexistent/p.pid"],
        ["--blockdev", f"{raw},size=abc", "--bogus"],  # the scan's mistake comes first
    ]


@needs_qsd
def test_bad_command_lines_fail_as_in_qsd(tmp_path: Path) -> None:
    (tmp_path / "img.raw").write_bytes(bytes(1 << 20))
    differences = []
    for args in bad_command_lines(str(tmp_path)):
        theirs = run(QSD, args, tmp_path)
        ours = run(QJOBD, args, tmp_path)
        assert theirs[0] == 1, (args, theirs)
        if ours != theirs:
            differences.append((args, theirs, ours))
    assert differences == []


@pytest.mark.parametrize(("args", "named"), [
    (["--export", "type=nbd,id=e,node-name=n"], "--export"),
    (["--nbd-server", "addr.type=unix,addr.path=/tmp/x"], "--nbd-server"),
    (["--object", "iothread,id=t"], "--object"),
    (["-T", "help"], "--trace"),
    (["--chardev", "file,id=f,path=/tmp/x"], "'file'"),
    (["--chardev", "socket,id=c,host=localhost,port=0,server=on,wait=off"], "'host'"),
    (["--chardev", "socket,id=c,path=/tmp/x.sock"], "server=on"),
    (["--chardev", "socket,id=c,path=/tmp/x.sock,server=on"], "wait=off"),
])
def test_what_qjobd_cannot_honour_is_refused_by_name(
        tmp_path: Path, args: list[str], named: str) -> None:
    status, stderr = run(QJOBD, args, tmp_path)
    assert status == 1
    lines = stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"qjobd: {' '.join(args)}: ")
    assert named in lines[0]
    assert "qjobd" in lines[0].partition(": ")[2]


def test_help_and_version(tmp_path: Path) -> None:
    for args in (["-h"], ["--help"], ["--he"], ["-h", "--bogus"], ["-hx"]):
        result = subprocess.run([*QJOBD, *args], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0
        assert result.stderr == ""
        assert result.stdout.startswith("Usage: qjobd [options]")
        for option in ("--blockdev", "--chardev", "--monitor", "--pidfile", "--daemonize",
                       "--socket"):
            assert option in result.stdout
    for args in (["-V"], ["--version"], ["-V", "--bogus"], ["--blockdev", "bad", "-V"]):
        result = subprocess.run([*QJOBD, *args], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0
        assert re.fullmatch(r"qjobd \S+\n", result.stdout)


class Stdio:
    """A daemon with its QMP monitor on stdin/stdout, driven line by line."""

    def __init__(self, program: list[str], args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [*program, *args, "--chardev", "stdio,id=s", "--monitor", "s"], cwd=cwd,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        assert self.process.stdin is not None
        self._out = self.process.stdout
        self._in = self.process.stdin
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ)
        self._buffer = b""
        self.replies: list[Any] = []
        self.events: list[Any] = []
        self.greeting = self._line()

    def _line(self, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "no output from the daemon"
            assert self._selector.select(left), "no output from the daemon"
            chunk = os.read(self._out.fileno(), 65536)
            assert chunk, "the daemon closed its stdout"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _message(self) -> Any:
        message = self._line()
        if "event" in message:
            del message["timestamp"]
            self.events.append(message)
        return message

    def send(self, execute: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = arguments
        self._in.write(json.dumps(request).encode() + b"\n")
        self._in.flush()
        while "event" in (message := self._message()):
            pass
        self.replies.append(message)
        return message

    def until(self, event: str, **data: Any) -> None:
        while not any(e["event"] == event and all(e["data"].get(k) == v for k, v in data.items())
                      for e in self.events):
            self._message()

    def close(self) -> int:
        self._in.close()
        try:
            return self.process.wait(15)
        finally:
            self._out.close()


def session(program: list[str], workdir: Path) -> tuple[list[Any], list[Any]]:
    """The same --blockdev options and QMP input for either program."""
    img = workdir / "img.raw"
    img.write_bytes(os.urandom(1 << 16) + bytes((1 << 20) - (1 << 16)))
    (workdir / "dst.raw").write_bytes(bytes(1 << 20))
    args = [
        "--blockdev", f"raw,node-name=src,file.driver=file,file.filename={img},"
                      "read-only=on,file.cache.direct=off,offset=0x0,size=0x100000",
        "--blockdev", json.dumps({"driver": "raw", "node-name": "dst", "file": {
            "driver": "file", "filename": str(workdir / "dst.raw")}}),
        "--blockdev", "driver=null-co,node-name=nul,size=1048576,read-zeroes=yes",
    ]
    daemon = Stdio(program, args, workdir)
    daemon.send("qmp_capabilities")
    daemon.send("query-named-block-nodes", flat=True)
    daemon.send("blockdev-add", driver="null-co", **{"node-name": "nul"})
    daemon.send("blockdev-backup", **{"job-id": "bk", "device": "src", "target": "dst",
                                      "sync": "full", "auto-dismiss": False})
    daemon.until("JOB_STATUS_CHANGE", id="bk", status="concluded")
    daemon.send("query-jobs")
    daemon.send("job-dismiss", id="bk")
    daemon.send("blockdev-del", **{"node-name": "nul"})
    daemon.send("quit")
    assert daemon.close() == 0
    assert (workdir / "dst.raw").read_bytes() == img.read_bytes()
    replies = json.loads(mask_node_names(json.dumps(daemon.replies).replace(str(workdir), "W")))
    statuses = without_drain_pairs([e["data"]["status"] for e in daemon.events
                                    if e["event"] == "JOB_STATUS_CHANGE"])
    others = [e for e in daemon.events if e["event"] != "JOB_STATUS_CHANGE"]
    assert set(daemon.greeting["QMP"]) == {"version", "capabilities"}
    return replies, [statuses, others]


@needs_qsd
def test_blockdev_options_and_piped_qmp_match_qsd(tmp_path: Path) -> None:
    (tmp_path / "qsd").mkdir()
    (tmp_path / "qjobd").mkdir()
    theirs = session(QSD, tmp_path / "qsd")
    ours = session(QJOBD, tmp_path / "qjobd")
    assert ours == theirs


def test_stdio_monitor_ends_at_eof_and_the_daemon_stays(tmp_path: Path) -> None:
    """As QSD: the end of stdin closes that monitor only."""
    sock = tmp_path / "m.sock"
    daemon = Stdio(QJOBD, ["--chardev", f"socket,path={sock},server=on,wait=off,id=c",
                           "--monitor", "chardev=c"], tmp_path)
    daemon.send("qmp_capabilities")
    daemon._in.close()
    time.sleep(0.3)
    assert daemon.process.poll() is None
    with Client(sock) as client:
        client.ok("quit")
    assert daemon.process.wait(15) == 0
    daemon._out.close()


def start(args: list[str], cwd: Path, wait_for: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*QJOBD, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    wait_for_socket(wait_for, process)
    return process


def test_several_monitors_share_one_daemon(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sock", tmp_path / "b.sock"
    process = start(["--chardev", f"socket,path={first},server=on,wait=off,id=a",
                     "--chardev", f"socket,path={second},server=on,wait=off,id=b",
                     "--monitor", "a", "--monitor", "chardev=b,mode=control",
                     "--blockdev", "null-co,node-name=n0"], tmp_path, second)
    try:
        with Client(first) as one, Client(second) as two:
            one.ok("blockdev-add", {"driver": "null-co", "node-name": "n1"})
            names = {node["node-name"] for node in two.ok("query-named-block-nodes")}
            assert names == {"n0", "n1"}
            one.ok("blockdev-create", {"job-id": "c", "options": {
                "driver": "file", "filename": str(tmp_path / "new.img"), "size": 4096}})
            two.wait_status("c", "concluded")  # events reach every monitor
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert process.stderr is not None
        process.stderr.close()
    assert not first.exists()
    assert not second.exists()


def test_pidfile_written_locked_and_removed(tmp_path: Path) -> None:
    pidfile, sock = tmp_path / "qjobd.pid", tmp_path / "m.sock"
    process = start(["--pidfile", str(pidfile),
                     "--chardev", f"socket,path={sock},server=on,wait=off,id=c", "--monitor", "c"],
                    tmp_path, sock)
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert pidfile.read_text() == f"{process.pid}\n"
        assert stat.S_IMODE(pidfile.stat().st_mode) == 0o600
        # A second daemon (either program) finds the file locked.
        expected = (1, "qjobd: cannot create PID file: Cannot lock pid file: "
                       "Resource temporarily unavailable\n")
        assert run(QJOBD, ["--pidfile", str(pidfile), "--socket", str(tmp_path / "2.sock")],
                   tmp_path) == expected
        if qsd_available():
            assert run(QSD, ["--pidfile", str(pidfile)], tmp_path) == expected
        assert pidfile.read_text() == f"{process.pid}\n"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert process.stderr is not None
        process.stderr.close()
    assert not pidfile.exists()


def test_daemonize_returns_once_serving(tmp_path: Path) -> None:
    pidfile, sock = tmp_path / "qjobd.pid", tmp_path / "m.sock"
    (tmp_path / "img").write_bytes(bytes(4096))
    result = subprocess.run(
        [*QJOBD, "--daemonize", "--pidfile", "qjobd.pid",
         "--blockdev", "driver=file,filename=img,node-name=f",
         "--chardev", f"socket,path={sock},server=on,wait=off,id=c", "--monitor", "c"],
        cwd=tmp_path, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert b"ERROR" not in result.stderr
    assert b"WARNING" not in result.stderr
    # Startup is complete when the parent has exited: no waiting needed.
    pid = int(pidfile.read_text())
    try:
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert os.getsid(pid) != os.getsid(0)  # a session of its own
        with Client(sock) as client:  # the relative path was opened before chdir("/")
            nodes = client.ok("query-named-block-nodes")
            assert [node["file"] for node in nodes] == ["img"]
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while pidfile.exists():
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.02)


@needs_qsd
def test_daemonize_failure_exits_1_with_the_childs_message(tmp_path: Path) -> None:
    args = ["--daemonize", "--blockdev", "driver=file,filename=/nonexistent/x,node-name=n"]
    assert run(QJOBD, args, tmp_path) == run(QSD, args, tmp_path)
    assert run(QJOBD, args, tmp_path)[0] == 1


def test_socket_option_is_qjobds_short_form(tmp_path: Path) -> None:
    """--socket adds a monitor of its own next to --monitor ones."""
    own, chardev = tmp_path / "own.sock", tmp_path / "c.sock"
    process = start(["--socket", str(own), "--chardev",
                     f"socket,path={chardev},server=on,wait=off,id=c", "--monitor", "c"],
                    tmp_path, own)
    try:
        for path in (own, chardev):
            with Client(path) as client:
                assert client.ok("query-jobs") == []
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert process.stderr is not None
        process.stderr.close()


def test_chardev_without_monitor_listens_but_serves_nothing(tmp_path: Path) -> None:
    held, served = tmp_path / "held.sock", tmp_path / "served.sock"
    process = start(["--chardev", f"socket,path={held},server=on,wait=off,id=h",
                     "--socket", str(served)], tmp_path, served)
    try:
        assert stat.S_ISSOCK(held.stat().st_mode)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.3)
        probe.connect(str(held))
        with pytest.raises(TimeoutError):
            probe.recv(1)  # no greeting: no monitor there
        probe.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert process.stderr is not None
        process.stderr.close()


def test_log_file_keeps_the_log_of_a_daemonized_qjobd(tmp_path: Path) -> None:
    """--daemonize sends stderr to /dev/null as QSD does; --log-file (relative to
    where qjobd started) still gets the log, and is reopened once rotated away."""
    sock, log = tmp_path / "m.sock", tmp_path / "qjobd.log"
    result = subprocess.run(
        [*QJOBD, "--daemonize", "--pidfile", "qjobd.pid", "--log-file", "qjobd.log",
         "--log-level", "debug", "--socket", str(sock)],
        cwd=tmp_path, capture_output=True, timeout=30)
    assert (result.returncode, result.stderr) == (0, b"")
    pid = int((tmp_path / "qjobd.pid").read_text())
    try:
        assert f"listening on {sock}" in log.read_text()
        log.rename(tmp_path / "qjobd.log.1")  # what logrotate does
        with Client(sock) as client:
            client.ok("query-jobs")
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while (tmp_path / "qjobd.pid").exists():
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.02)
    assert "stopped" in log.read_text()


def test_log_file_that_cannot_be_opened_is_a_startup_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "qjobd.log"
    assert run(QJOBD, ["--log-file", str(missing)], tmp_path) == (
        1, f"qjobd: --log-file {missing}: No such file or directory\n")


def test_pid_file_error_comes_before_the_socket_error(tmp_path: Path) -> None:
    """As in QSD, whose only failure here is the PID file's, even when another
    daemon already listens on qjobd's socket."""
    sock = tmp_path / "m.sock"
    first = start(["--socket", str(sock)], tmp_path, sock)
    try:
        assert run(QJOBD, ["--socket", str(sock), "--pidfile", "/nonexistent/p.pid"],
                   tmp_path) == (1, "qjobd: cannot create PID file: Could not create "
                                 "'/nonexistent/p.pid': No such file or directory\n")
    finally:
        stop(first)

"""systemd: socket activation (LISTEN_FDS) and readiness (READY=1 on NOTIFY_SOCKET).

Each is tested through a launcher of our own that passes a listening socket as fd 3
exactly as systemd does, and through ``systemd-socket-activate`` itself; readiness
is read from a datagram socket the test binds, under a path and in the abstract
namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.client import Client

from qjobd.server.systemd import listen_sockets, notify

#: Puts the descriptor named by argv[1] on fd 3, sets LISTEN_FDS/LISTEN_PID for
#: itself, and becomes qjobd (argv[2:]): what systemd does for a .socket unit.
LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "qjobd", *sys.argv[2:]])
"""


def listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(16)
    return sock


def ready_socket(name: str) -> socket.socket:
    """A datagram socket to receive notifications on; ``@name`` is abstract."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name[1:].encode() if name.startswith("@") else name)
    sock.settimeout(20)
    return sock


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    if process.stderr:
        process.stderr.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_activated_socket_served_and_ready_sent(tmp_path: Path, abstract: bool) -> None:
    path = tmp_path / "activated.sock"
    name = f"@qjobd-test-{os.getpid()}-{time.monotonic_ns()}" if abstract else str(
        tmp_path / "notify")
    with listening(path) as sock, ready_socket(name) as notifications:
        env = {**os.environ, "NOTIFY_SOCKET": name}
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(sock.fileno())], pass_fds=[sock.fileno()],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert notifications.recv(4096) == b"READY=1"
            with Client(path) as first, Client(path) as second:
                first.ok("blockdev-add", {"driver": "null-co", "node-name": "n"})
                assert [n["node-name"] for n in second.ok("query-named-block-nodes")] == ["n"]
        finally:
            stop(process)
    # The socket file is the activator's: qjobd leaves it, and made no socket of its own.
    assert path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["activated.sock"] + ([] if abstract else ["notify"]))


def test_activation_meant_for_another_process_is_ignored(tmp_path: Path) -> None:
    """LISTEN_PID names someone else: the descriptors are not ours (and the variables
    are removed either way, so a child would not take them)."""
    with listening(tmp_path / "x.sock") as sock:
        env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1000000)}
        assert listen_sockets(env) == []
        assert env == {}
        assert sock.fileno() >= 0


def test_notify_without_socket_or_with_a_dead_one() -> None:
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "relative"}) is False


def test_ready_sent_for_an_own_socket_too(tmp_path: Path) -> None:
    with ready_socket(str(tmp_path / "notify")) as notifications:
        process = subprocess.Popen(
            [sys.executable, "-m", "qjobd", "--socket", str(tmp_path / "q.sock")],
            env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert notifications.recv(4096) == b"READY=1"
            # READY=1 comes after the socket listens.
            with Client(tmp_path / "q.sock") as client:
                assert client.ok("query-jobs") == []
        finally:
            stop(process)


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate not installed (Debian package systemd)")
def test_systemd_socket_activate(tmp_path: Path) -> None:
    path = tmp_path / "activated.sock"
    process = subprocess.Popen(
        ["systemd-socket-activate", "--listen", str(path), sys.executable, "-m", "qjobd"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not path.exists():
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.01)
        # The first connection starts qjobd, which is handed the socket and serves it.
        with Client(path) as client:
            client.ok("blockdev-add", {"driver": "null-co", "node-name": "n"})
            with Client(path) as other:
                assert [n["node-name"] for n in other.ok("query-named-block-nodes")] == ["n"]
    finally:
        stop(process)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed")
def test_unit_files_verify(tmp_path: Path) -> None:
    """contrib/systemd's units are valid for systemd (ExecStart pointed at a program
    that exists here), and the service is Type=notify with a read-only system."""
    units = Path(__file__).resolve().parent.parent / "contrib" / "systemd"
    service = (units / "qjobd.service").read_text()
    assert "Type=notify" in service
    assert "ProtectSystem=strict" in service
    (tmp_path / "qjobd.service").write_text(service.replace("/usr/local/bin/qjobd",
                                                            sys.executable))
    shutil.copy(units / "qjobd.socket", tmp_path / "qjobd.socket")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no",
         str(tmp_path / "qjobd.socket"), str(tmp_path / "qjobd.service")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "qjobd" not in result.stderr, result.stderr

"""The qjobd command: socket file hygiene, signals, exit status."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.daemons import start_qjobd, stop
from helpers.wire import Wire

from qjobd import __version__


def run_qjobd(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qjobd", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    result = run_qjobd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"qjobd {__version__}"


def test_creates_private_directory_and_socket(tmp_path: Path) -> None:
    path = tmp_path / "made" / "qmp.sock"
    process = start_qjobd(path)
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        stop(process)


def test_replaces_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    process = start_qjobd(path)
    try:
        with Wire(path) as wire:
            assert "QMP" in wire.negotiate()
    finally:
        stop(process)


def test_refuses_live_socket(tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    first = start_qjobd(path)
    try:
        result = run_qjobd("--socket", str(path))
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert str(path) in lines[0]
        with Wire(path) as wire:  # the first daemon is untouched
            assert "QMP" in wire.negotiate()
    finally:
        stop(first)


def test_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.write_text("user data")
    result = run_qjobd("--socket", str(path))
    assert result.returncode != 0
    assert str(path) in result.stderr
    assert path.read_text() == "user data"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_clients_and_removes_socket(tmp_path: Path, signum: int) -> None:
    path = tmp_path / "qmp.sock"
    process = start_qjobd(path)
    with Wire(path) as wire:
        wire.negotiate()
        process.send_signal(signum)
        assert process.wait(15) == 0
        assert wire.raw_line(timeout=5) is None  # our connection was closed
    assert not path.exists()
    if process.stderr:
        process.stderr.close()


def test_default_socket_for_root_or_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from qjobd.server.listener import default_socket_path

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    expected = (
        Path("/run/qjobd/qmp.sock") if os.geteuid() == 0 else tmp_path / "qjobd" / "qmp.sock"
    )
    assert default_socket_path() == expected

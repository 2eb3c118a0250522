"""A raw-socket QMP client for tests: exact bytes, no client library in between."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class Wire:
    """Blocking client that keeps every line the daemon sent, events included."""

    def __init__(self, path: str | Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.buffer = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def raw_line(self, timeout: float = 10.0) -> bytes | None:
        """The next line exactly as sent, CR LF included; None on timeout or EOF."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return None
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def message(self, timeout: float = 10.0) -> dict[str, Any] | None:
        line = self.raw_line(timeout)
        return None if line is None else json.loads(line)

    def reply(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next non-event message; events seen meanwhile go to ``events``."""
        while True:
            message = self.message(timeout)
            if message is None or "event" not in message:
                return message
            self.events.append(message)

    def raw_reply(self, timeout: float = 10.0) -> bytes | None:
        while True:
            line = self.raw_line(timeout)
            if line is None or not line.startswith(b'{"timestamp"'):
                return line
            self.events.append(json.loads(line))

    def cmd(self, execute: str, arguments: dict[str, Any] | None = None,
            **extra: Any) -> dict[str, Any] | None:
        request: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            request["arguments"] = arguments
        request.update(extra)
        self.send(json.dumps(request) + "\n")
        return self.reply()

    def negotiate(self) -> dict[str, Any]:
        greeting = self.message()
        assert greeting is not None
        assert "QMP" in greeting
        assert self.cmd("qmp_capabilities") == {"return": {}}
        return greeting


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            message = process.stderr.read() if process.stderr else b""
            if process.stderr:
                process.stderr.close()
            raise RuntimeError(f"daemon exited early: {message!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def start_qjobd(socket_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "qjobd", "--socket", str(socket_path), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_for_socket(socket_path, process)
    return process


def start_qsd(socket_path: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["qemu-storage-daemon", "--chardev",
         f"socket,path={socket_path},server=on,wait=off,id=c0", "--monitor", "chardev=c0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_for_socket(socket_path, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr:
        process.stderr.close()


def qsd_available() -> bool:
    return any(
        os.access(os.path.join(directory, "qemu-storage-daemon"), os.X_OK)
        for directory in os.environ.get("PATH", "").split(os.pathsep)
    )

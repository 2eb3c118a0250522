"""What the benchmarks share: starting qjobd and qemu-storage-daemon side by side."""

from __future__ import annotations

import json
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["available_daemons", "rss_bytes", "start_daemon", "start_daemon_sockets",
           "stop_daemons"]


def available_daemons() -> list[str]:
    """qjobd, plus "qsd" when qemu-storage-daemon is installed to compare with."""
    if shutil.which("qemu-storage-daemon"):
        return ["qjobd", "qsd"]
    print("qemu-storage-daemon not installed: measuring qjobd only")
    return ["qjobd"]


def start_daemon(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``kind`` ("qjobd" or "qsd") with a QMP socket in ``workdir``."""
    process, paths = start_daemon_sockets(kind, workdir, 1)
    return process, paths[0]


def start_daemon_sockets(kind: str, workdir: Path,
                         clients: int) -> tuple[subprocess.Popen[bytes], list[Path]]:
    """Start ``kind`` so that ``clients`` clients can be connected at once.

    qjobd serves any number of clients on its one socket: the list repeats it.  A QSD
    monitor serves one connection at a time, so QSD gets one monitor (and socket)
    per client.
    """
    if kind == "qjobd":
        path = workdir / "qjobd.sock"
        paths = [path] * clients
        command = [sys.executable, "-m", "qjobd", "--socket", str(path), "--log-level", "warning"]
    else:
        paths = [workdir / (f"qsd-{i}.sock" if i else "qsd.sock") for i in range(clients)]
        command = ["qemu-storage-daemon"]
        for i, path in enumerate(paths):
            command += ["--chardev", f"socket,path={path},server=on,wait=off,id=c{i}",
                        "--monitor", f"chardev=c{i}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not all(path.exists() for path in paths):
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"could not start {kind}")
        time.sleep(0.02)
    time.sleep(0.05)  # the socket file appears at bind(), a moment before listen()
    return process, paths


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def stop_daemons(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


class Client:
    """Minimal blocking QMP client that timestamps every message it receives."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buffer = b""
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.receive()
        self.command("qmp_capabilities")

    def receive(self, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.sock], [], [], max(0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no message from the daemon")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("daemon closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        if "event" in message:
            self.events.append((time.perf_counter(), message))
        return message

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        request: dict[str, Any] = {"execute": name}
        if arguments is not None:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self.receive()
            if "event" in message:
                continue
            if "error" in message:
                raise RuntimeError(f"{name}: {message['error']['desc']}")
            return message["return"]

    def wait_event(self, name: str | tuple[str, ...], job: str, status: str | None = None,
                   after: int = 0) -> tuple[float, dict[str, Any]]:
        """perf_counter time and data of the first matching event at index >= ``after``."""
        stamp, _, data = self.wait_events((name,) if isinstance(name, str) else name, job,
                                          status, after)
        return stamp, data

    def wait_events(self, names: tuple[str, ...], job: str, status: str | None = None,
                    after: int = 0) -> tuple[float, str, dict[str, Any]]:
        """Time, name and data of the first event of one of ``names`` at index >= ``after``."""
        index = after
        while True:
            while index < len(self.events):
                stamp, event = self.events[index]
                index += 1
                data = event.get("data", {})
                if event["event"] not in names or job not in (data.get("id"),
                                                              data.get("device")):
                    continue
                if status is None or data.get("status") == status:
                    return stamp, event["event"], data
            self.receive()

    def close(self) -> None:
        self.sock.close()

"""qjobd and qemu-storage-daemon as subprocesses on Unix sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from helpers.client import Client

T = TypeVar("T")


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until ``process`` created its socket ``path``; raise if it exits first."""
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
    """``python -m qjobd --socket socket_path *extra``, once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qjobd", "--socket", str(socket_path), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_for_socket(socket_path, process)
    return process


@dataclass
class Daemon:
    """A daemon subprocess and the socket it listens on."""

    socket: Path
    process: subprocess.Popen[bytes]

    def quit(self, client: Client) -> None:
        """``quit``, then wait for the process to end.

        QEMU and qjobd both reply to quit before they close their nodes, and a
        qcow2 node writes its cached tables back when it closes: an image is whole
        on disk only once the process is gone, so an oracle must not look sooner.
        """
        client.ok("quit")
        assert self.process.wait(30) == 0


def start_qsd(socket_path: Path) -> subprocess.Popen[bytes]:
    """qemu-storage-daemon with a QMP monitor on ``socket_path``, once it listens."""
    process = subprocess.Popen(
        ["qemu-storage-daemon", "--chardev",
         f"socket,path={socket_path},server=on,wait=off,id=c0", "--monitor", "chardev=c0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_for_socket(socket_path, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 seconds."""
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


def kill_9_after(socket_path: Path, actions: Callable[[Client], None]) -> None:
    """Start a qjobd, run ``actions`` on a client, then SIGKILL it (whatever
    happened): the crash tests' frame."""
    process = start_qjobd(socket_path)
    try:
        with Client(socket_path) as client:
            actions(client)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.stderr:
            process.stderr.close()


def on_both_daemons(directory: Path, exchange: Callable[[Path, Path], T]) -> tuple[T, T]:
    """Run ``exchange(socket, workdir)`` against qemu-storage-daemon in
    ``directory/qsd``, then against qjobd in ``directory/qjobd``; (QSD's, qjobd's)."""
    results: list[T] = []
    for name, start in (("qsd", start_qsd), ("qjobd", start_qjobd)):
        workdir = directory / name
        workdir.mkdir()
        process = start(workdir / "d.sock")
        try:
            results.append(exchange(workdir / "d.sock", workdir))
        finally:
            stop(process)
    return results[0], results[1]

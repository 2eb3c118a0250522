"""What the benchmarks share: starting qjobd and qemu-storage-daemon side by side."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["available_daemons", "start_daemon", "stop_daemons"]


def available_daemons() -> list[str]:
    """qjobd, plus "qsd" when qemu-storage-daemon is installed to compare with."""
    if shutil.which("qemu-storage-daemon"):
        return ["qjobd", "qsd"]
    print("qemu-storage-daemon not installed: measuring qjobd only")
    return ["qjobd"]


def start_daemon(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``kind`` ("qjobd" or "qsd") with a QMP socket in ``workdir``."""
    path = workdir / f"{kind}.sock"
    if kind == "qjobd":
        command = [sys.executable, "-m", "qjobd", "--socket", str(path), "--log-level", "warning"]
    else:
        command = ["qemu-storage-daemon", "--chardev",
                   f"socket,path={path},server=on,wait=off,id=c0", "--monitor", "chardev=c0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not path.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"could not start {kind}")
        time.sleep(0.02)
    return process, path


def stop_daemons(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()

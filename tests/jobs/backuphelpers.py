"""Helpers for the backup, create and transaction tests (plain module, imported by name).

:class:`Client` wraps the raw-socket :class:`wire.Wire` with what job tests need:
waiting for a job's status, the JOB_STATUS_CHANGE sequence of each job, and replies
as the exact lines the daemon sent.  The same code drives qjobd and
qemu-storage-daemon, so differential tests run one scenario against both.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from wire import Wire

MiB = 1 << 20


class Client:
    """A negotiated QMP session that keeps every event it receives."""

    def __init__(self, socket_path: Path) -> None:
        self.wire = Wire(socket_path)
        self.wire.negotiate()
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.wire.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _collect(self) -> None:
        self.events.extend(self.wire.events)
        self.wire.events.clear()

    def raw(self, execute: str, arguments: dict[str, Any] | None = None) -> str:
        """Send a command; its reply exactly as sent (without CR LF)."""
        request: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            request["arguments"] = arguments
        self.wire.send(json.dumps(request) + "\n")
        line = self.wire.raw_reply(timeout=30)
        self._collect()
        assert line is not None, f"no reply to {execute}"
        return line.decode().rstrip("\r\n")

    def cmd(self, execute: str, arguments: dict[str, Any] | None = None) -> Any:
        return json.loads(self.raw(execute, arguments))

    def ok(self, execute: str, arguments: dict[str, Any] | None = None) -> Any:
        reply = self.cmd(execute, arguments)
        assert "return" in reply, (execute, arguments, reply)
        return reply["return"]

    def error(self, execute: str, arguments: dict[str, Any] | None = None) -> str:
        reply = self.cmd(execute, arguments)
        assert "error" in reply, (execute, arguments, reply)
        assert reply["error"]["class"] == "GenericError", reply
        return str(reply["error"]["desc"])

    def mark(self) -> int:
        """A position in the events, for waiting only for later ones."""
        return len(self.events)

    def wait(self, predicate: Any, timeout: float = 30.0, after: int = 0) -> dict[str, Any]:
        """The first event from index ``after`` on, received or coming, matching."""
        for event in self.events[after:]:
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "event did not come"
            message = self.wire.message(timeout=left)
            assert message is not None, "daemon went away"
            assert "event" in message, f"unexpected message {message}"
            self.events.append(message)
            if predicate(message):
                return message

    def wait_status(self, job: str, status: str, timeout: float = 30.0,
                    after: int = 0) -> None:
        self.wait(lambda e: e["event"] == "JOB_STATUS_CHANGE"
                  and e["data"] == {"status": status, "id": job}, timeout, after)

    def wait_event(self, name: str, job: str, timeout: float = 30.0,
                   after: int = 0) -> dict[str, Any]:
        return self.wait(lambda e: e["event"] == name
                         and job in (e["data"].get("device"), e["data"].get("id")),
                         timeout, after)

    def settle(self, seconds: float = 0.2) -> None:
        """Collect whatever events arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self.wire.message(timeout=left)
            if message is None:
                break
            self.events.append(message)

    def statuses(self, job: str) -> list[str]:
        return [e["data"]["status"] for e in self.events
                if e["event"] == "JOB_STATUS_CHANGE" and e["data"]["id"] == job]

    def job_events(self, job: str) -> list[tuple[str, Any]]:
        """Every event about ``job`` in order: (name, data), statuses as names."""
        found: list[tuple[str, Any]] = []
        for event in self.events:
            data = event.get("data", {})
            if job not in (data.get("id"), data.get("device")):
                continue
            if event["event"] == "JOB_STATUS_CHANGE":
                found.append(("status", data["status"]))
            else:
                found.append((event["event"], data))
        return found

    def forget_events(self) -> None:
        self.events.clear()

    def add_raw(self, node: str, path: Path | str, **extra: Any) -> None:
        self.ok("blockdev-add", {"driver": "raw", "node-name": node,
                                 "file": {"driver": "file", "filename": str(path)}, **extra})

    def add_blkdebug(self, node: str, path: Path | str, rules: list[dict[str, Any]]) -> None:
        self.ok("blockdev-add", {"driver": "raw", "node-name": node, "file": {
            "driver": "blkdebug", "node-name": f"{node}dbg",
            "image": {"driver": "file", "filename": str(path)}, "inject-error": rules}})


def without_drain_pairs(statuses: list[str]) -> list[str]:
    """Drop QEMU's paused/running pairs right after ``running`` (drain artifacts).

    A pause the client asked for shows as paused then running much later, with
    other events in between in the recorded order, so only pairs directly after a
    ``running`` are removed; applied to both daemons it leaves real pauses alone.
    """
    result: list[str] = []
    index = 0
    while index < len(statuses):
        if (statuses[index:index + 2] == ["paused", "running"] and result
                and result[-1] == "running"):
            index += 2
            continue
        result.append(statuses[index])
        index += 1
    return result


def make_image(path: Path, size: int, *, seed: int = 0, holes: bool = False,
               fill: int | None = None) -> Path:
    """A raw image: random data (with some 1 MiB holes), or every byte ``fill``."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        out.truncate(size)
        if fill is not None:
            out.write(bytes([fill]) * size)
            return path
        for offset in range(0, size, MiB):
            if holes and rng.random() < 0.3:
                continue
            out.seek(offset)
            out.write(rng.randbytes(min(MiB, size - offset)))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same_content(a: Path, b: Path) -> bool:
    """qemu-img compare (contents, both raw), after checking the sizes agree."""
    if a.stat().st_size != b.stat().st_size:
        return False
    result = subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F", "raw",
                             str(a), str(b)], capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def need_qemu_img() -> None:
    if not any(os.access(os.path.join(d, "qemu-img"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("qemu-img is not installed")

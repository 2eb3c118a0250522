"""QMP clients for tests on top of the raw :class:`~helpers.wire.Wire`.

:class:`Client` adds what job tests need: replies as the exact lines the daemon sent,
waiting for a job's status, and the events of each job.  :class:`Transcript` also
keeps everything sent and received as normalized lines, for comparing sessions
with recorded ones or with qemu-storage-daemon's.  The same code drives qjobd and
qemu-storage-daemon, so differential tests run one scenario against both.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.nodes import file_opts, raw_opts
from helpers.wire import Wire

Message = dict[str, Any]


def request(execute: str, arguments: dict[str, Any] | None = None) -> Message:
    message: Message = {"execute": execute}
    if arguments is not None:
        message["arguments"] = arguments
    return message


class Client:
    """A negotiated QMP session that keeps every event it receives."""

    def __init__(self, socket_path: Path) -> None:
        self.wire = Wire(socket_path)
        self.wire.negotiate()
        self.events: list[Message] = []

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
        self.wire.send(json.dumps(request(execute, arguments)) + "\n")
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

    def wait(self, predicate: Callable[[Message], bool], timeout: float = 30.0,
             after: int = 0) -> Message:
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
                   after: int = 0) -> Message:
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
        self.ok("blockdev-add", raw_opts(node, path, **extra))

    def add_blkdebug(self, node: str, path: Path | str, rules: list[dict[str, Any]]) -> None:
        self.ok("blockdev-add", {"driver": "raw", "node-name": node, "file": {
            "driver": "blkdebug", "node-name": f"{node}dbg",
            "image": file_opts(path), "inject-error": rules}})


_TIMESTAMP = re.compile(rb'^\{"timestamp": \{"seconds": \d+, "microseconds": \d+\}, ')
_NODE_NAME = re.compile(r"#block\d+")


def mask_node_names(text: str) -> str:
    """``text`` with generated node names (#block123...) as #blockN."""
    return _NODE_NAME.sub("#blockN", text)


def normalized(text: str, directory: str) -> str:
    """``text`` with ``directory`` as /tmp/X and generated node names as #blockN."""
    return mask_node_names(text.replace(directory, "/tmp/X"))


class Transcript(Client):
    """A client that also keeps, in ``lines``, what was sent ("> ...") and received
    ("< ...") in order, normalized for comparison: no timestamps, ``directory`` as
    /tmp/X, generated node names as #blockN."""

    def __init__(self, socket_path: Path, directory: Path) -> None:
        super().__init__(socket_path)
        self.directory = str(directory)
        self.lines: list[str] = []
        self.wire.on_line = self._received

    def _received(self, line: bytes) -> None:
        text = _TIMESTAMP.sub(b"{", line).decode().rstrip("\r\n")
        self.lines.append("< " + normalized(text, self.directory))

    def raw(self, execute: str, arguments: dict[str, Any] | None = None) -> str:
        self.lines.append("> " + normalized(json.dumps(request(execute, arguments)),
                                            self.directory))
        return super().raw(execute, arguments)

    def send_line(self, text: str) -> None:
        """Send a request as written in a transcript (/tmp/X for the directory)."""
        self.lines.append("> " + text)
        self.wire.send(text.replace("/tmp/X", self.directory) + "\n")

    def receive(self, timeout: float = 20) -> Message:
        """The next message, whatever it is."""
        line = self.wire.raw_line(timeout)
        assert line is not None, f"nothing received; so far: {self.lines[-5:]}"
        message: Message = json.loads(line)
        if "event" in message:
            self.events.append(message)
        return message

    def quiet(self, execute: str, arguments: dict[str, Any] | None = None) -> Message:
        """Send a command and keep neither it nor its reply (set-up steps)."""
        mark = len(self.lines)
        reply: Message = self.cmd(execute, arguments)
        del self.lines[mark:]
        return reply

    def until(self, event: str, **data: Any) -> Message:
        """Receive until a new ``event`` with ``data`` members comes (not one already
        received)."""
        return self.wait(lambda message: message["event"] == event and all(
            message.get("data", {}).get(key) == value for key, value in data.items()
        ), after=self.mark())

    def until_status(self, job_id: str, status: str) -> None:
        self.until("JOB_STATUS_CHANGE", id=job_id, status=status)


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

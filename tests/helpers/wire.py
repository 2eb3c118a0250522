"""A raw-socket QMP client for tests: exact bytes, no client library in between."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable
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
        #: Called with every line received (a transcript keeps them so).
        self.on_line: Callable[[bytes], None] | None = None

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
        if self.on_line is not None:
            self.on_line(line + b"\n")
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

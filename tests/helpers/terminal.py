"""Running a command in a real terminal (a pty), as a person would."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def run_in_terminal(argv: Sequence[str], timeout: float = 60.0, columns: int = 120
                    ) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a new pty ``columns`` wide;
    (exit status, everything it wrote, escape sequences included)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {key: value for key, value in os.environ.items()
           if key not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM")}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env,
                               close_fds=True, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill()
                raise TimeoutError(f"{argv} still running; so far: {b''.join(chunks)[-500:]!r}")
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return process.wait(10), b"".join(chunks).decode(errors="replace")


def plain(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return _ANSI.sub("", text)

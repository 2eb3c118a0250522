"""The process around the daemon: ``--pidfile`` and ``--daemonize``, as QSD does them.

PID file (``qemu_write_pidfile`` in QEMU): created mode 0600 if missing, locked with
an fcntl write lock that the process holds while it lives (a second daemon with the
same file fails: the lock is how tools tell a live pid from a stale one), checked to
still be the file at that path, truncated, and given ``<pid>\\n``.  It is written
once startup is complete, before any client is served, and removed at exit.

Daemonizing (``os_daemonize`` / ``os_setup_post``): the first thing done, before any
option that builds something is processed.  The process forks; the parent waits on a
pipe and exits 0 only when the child reports that startup completed, else 1 (the
child's error message is already on the shared stderr).  The child starts a new
session and forks again so it can never regain a terminal; once started it moves to
``/`` and points stdin, stdout and stderr at ``/dev/null``.  Relative paths in the
options are therefore resolved before the move, as in QSD.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from qjobd.server.listener import StartupError

__all__ = ["Daemonizer", "PidFile"]


class PidFile:
    """A locked file naming this process; :meth:`remove` at exit."""

    def __init__(self, path: Path) -> None:
        self._given = path
        self._fd = -1
        self._real: str | None = None

    def write(self) -> None:
        """Create, lock and fill the file.

        :raise StartupError: with QSD's message (``qjobd: cannot create PID file: ...``).
        """
        path = str(self._given)
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as error:
                raise StartupError(
                    f"qjobd: cannot create PID file: Could not create '{path}': {error.strerror}"
                ) from error
            try:
                opened = os.fstat(fd)
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                raise StartupError(
                    f"qjobd: cannot create PID file: Cannot lock pid file: {error.strerror}"
                ) from error
            try:
                current = os.stat(path)
            except FileNotFoundError:
                os.close(fd)  # removed under us by a racing daemon: try again
                continue
            if current.st_ino == opened.st_ino:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as error:
            os.unlink(path)
            os.close(fd)
            raise StartupError("qjobd: cannot create PID file: Failed to write pid file") from error
        self._fd = fd
        try:
            self._real = os.path.realpath(path, strict=True)
        except OSError as error:
            os.unlink(path)
            raise StartupError(
                f"qjobd: cannot resolve PID file path: {path}: {error.strerror}") from error

    def remove(self) -> None:
        """Remove the file (by the path resolved when it was written) and unlock it."""
        if self._real is not None:
            try:
                os.unlink(self._real)
            except OSError:
                pass
            self._real = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Daemonizer:
    """Going to the background with the parent waiting for the verdict."""

    def __init__(self) -> None:
        self._pipe = -1

    def detach(self) -> None:
        """Fork twice; only the grandchild returns.  The original process exits with
        0 once :meth:`started` is called in the grandchild, or 1 if it never is."""
        read_end, write_end = os.pipe()
        if os.fork() > 0:
            os.close(write_end)
            while True:
                try:
                    status = os.read(read_end, 1)
                    break
                except InterruptedError:
                    continue
            os._exit(0 if status == b"\0" else 1)
        os.close(read_end)
        self._pipe = write_end
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.umask(0o027)

    def started(self) -> None:
        """Startup is complete: leave the working directory and the terminal's
        descriptors, and let the waiting parent exit 0."""
        if self._pipe < 0:
            return
        os.chdir("/")
        sys.stdout.flush()
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.write(self._pipe, b"\0")
        os.close(self._pipe)
        self._pipe = -1

"""The Unix socket qjobd listens on, with care for the socket file.

The file is created mode 0600 (its directory 0700 when qjobd creates it), because
whoever can connect can read and overwrite every image qjobd can reach.  A socket file
left behind by a daemon that died is replaced; one that somebody still listens on is
not: two daemons must never fight over one path.  On close the file is removed only
if it is still the one we created.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import trio

from qjobd.errors import QJobdError

__all__ = [
    "ActivatedListener",
    "StartupError",
    "UnixListener",
    "default_history_path",
    "default_socket_path",
    "open_unix_listener",
]


class StartupError(QJobdError):
    """The daemon cannot start; the message is the one line shown to the operator."""


def default_socket_path() -> Path:
    """``/run/qjobd/qmp.sock`` for root, else under ``$XDG_RUNTIME_DIR``."""
    if os.geteuid() == 0:
        return Path("/run/qjobd/qmp.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "qjobd" / "qmp.sock"
    return Path(f"/tmp/qjobd-{os.getuid()}") / "qmp.sock"


def default_history_path(socket_path: Path) -> Path:
    """The job history of the daemon on ``socket_path``: in a state directory next to
    the socket (``qmp.sock.state/history.sqlite3``), so daemons on other sockets
    keep their own."""
    return socket_path.with_name(socket_path.name + ".state") / "history.sqlite3"


def _clear_stale_socket(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise StartupError(f"qjobd: {path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)  # nobody listens: left over from a dead daemon
        return
    except OSError as error:
        if error.errno in (errno.ENOENT,):
            return
        raise StartupError(f"qjobd: cannot check socket {path}: {error.strerror}") from error
    finally:
        probe.close()
    raise StartupError(f"qjobd: another daemon is already listening on {path}")


class UnixListener(trio.abc.Listener[trio.SocketStream]):
    """A socket listener that removes its socket file when closed.

    (``trio.SocketListener`` is final, so this wraps one instead of extending it.)
    """

    def __init__(self, sock: trio.socket.SocketType, path: Path) -> None:
        self._listener = trio.SocketListener(sock)
        self.path = path
        info = path.stat()
        self._identity = (info.st_dev, info.st_ino)

    async def accept(self) -> trio.SocketStream:
        return await self._listener.accept()

    def remove_file(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == self._identity:
            self.path.unlink(missing_ok=True)

    async def aclose(self) -> None:
        self.remove_file()
        await self._listener.aclose()


class ActivatedListener(trio.abc.Listener[trio.SocketStream]):
    """A listening socket qjobd was handed (systemd socket activation).

    Its file, if any, belongs to whoever made it: closing never removes it, so the
    next activation finds it in place.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))

    async def accept(self) -> trio.SocketStream:
        return await self._listener.accept()

    def remove_file(self) -> None:
        """Nothing to remove: the file is not ours."""

    async def aclose(self) -> None:
        await self._listener.aclose()


# The longest socket path the kernel accepts (sun_path holds 108 bytes with the NUL).
_SUN_PATH_MAX = 107


async def open_unix_listener(path: Path, backlog: int = 128, *,
                             create_parent: bool = True) -> UnixListener:
    """Create the socket at ``path``, replacing a stale one.

    ``create_parent``: make a missing directory (qjobd's own socket); a ``--chardev``
    path must exist already, as in QSD, and failures are worded as QSD words them.

    :raise StartupError: another daemon listens there, or the path is unusable.
    """
    parent = path.parent
    if not create_parent and not parent.is_dir():
        raise StartupError(f"Failed to bind socket to {path}: No such file or directory")
    if not parent.exists():
        try:
            parent.mkdir(mode=0o700, parents=True)
        except OSError as error:
            raise StartupError(f"qjobd: cannot create {parent}: {error.strerror}") from error
    _clear_stale_socket(path)
    # The socket is bound and listening under a private name first and only then linked
    # to its public one, so a client that sees the file is never refused: a plain bind()
    # would show the file before listen() had been called.
    staging = parent / f".qjobd-{os.getpid()}"
    if len(os.fsencode(staging)) > _SUN_PATH_MAX:
        staging = parent / f".{os.getpid()}"
    staging.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(staging))
        os.chmod(staging, 0o600)
        sock.listen(backlog)
        os.link(staging, path)
    except FileExistsError as error:
        sock.close()
        raise StartupError(f"qjobd: another daemon is already listening on {path}") from error
    except OSError as error:
        sock.close()
        if not create_parent:
            raise StartupError(f"Failed to bind socket to {path}: {error.strerror}") from error
        raise StartupError(f"qjobd: cannot listen on {path}: {error.strerror}") from error
    finally:
        os.umask(old_umask)
        staging.unlink(missing_ok=True)
    return UnixListener(sock, path)

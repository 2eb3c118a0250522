"""systemd's two protocols with a service, without libsystemd.

*Socket activation* (``sd_listen_fds(3)``): a service started for a ``.socket``
unit finds its listening sockets as descriptors 3, 4, ... and is told how many by
``LISTEN_FDS``, and that they are meant for it by ``LISTEN_PID`` (its own pid: the
variables may have been inherited by a child that must not take them).  The
variables are removed once read, so processes qjobd starts do not take the sockets
for theirs.

*Readiness* (``sd_notify(3)``): a ``Type=notify`` service sends ``READY=1`` in a
datagram to the Unix socket named by ``NOTIFY_SOCKET`` once it serves; a name that
starts with ``@`` is in the abstract namespace (the ``@`` stands for the leading NUL
byte).  systemd then starts the units ordered after it.  A failure to notify is
logged and otherwise ignored: the daemon works the same without a supervisor.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Mapping, MutableMapping
from typing import Final

__all__ = ["LISTEN_FDS_START", "listen_sockets", "notify"]

logger = logging.getLogger(__name__)

#: The first descriptor systemd passes.
LISTEN_FDS_START: Final = 3


def listen_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The listening stream sockets passed to this process, in order (often none).

    Descriptors that are not stream sockets are skipped with a warning (a ``.socket``
    unit with ``ListenDatagram=`` or a FIFO is a configuration mistake, not ours to
    serve).  Every descriptor taken is made close-on-exec.
    """
    env = os.environ if environ is None else environ
    count_text = env.get("LISTEN_FDS")
    pid_text = env.get("LISTEN_PID")
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if count_text is None or pid_text is None:
        return []
    try:
        count, pid = int(count_text), int(pid_text)
    except ValueError:
        logger.warning("ignoring malformed LISTEN_FDS=%r LISTEN_PID=%r", count_text, pid_text)
        return []
    if pid != os.getpid() or count <= 0:
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        try:
            mode = os.fstat(fd).st_mode
        except OSError as error:
            logger.warning("LISTEN_FDS names descriptor %d, which is unusable: %s",
                           fd, error.strerror)
            continue
        os.set_inheritable(fd, False)
        if not stat.S_ISSOCK(mode):
            logger.warning("ignoring passed descriptor %d: not a socket", fd)
            continue
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM:
            logger.warning("ignoring passed descriptor %d: not a stream socket", fd)
            sock.detach()
            continue
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + os.fsencode(name[1:])
    return name


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ...) to the service manager.

    Returns whether it was sent: False when ``NOTIFY_SOCKET`` is unset or the send
    failed (logged).
    """
    env = os.environ if environ is None else environ
    name = env.get("NOTIFY_SOCKET")
    if not name:
        return False
    if not name.startswith(("/", "@")):
        logger.warning("ignoring NOTIFY_SOCKET=%r: not a Unix socket path", name)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), _address(name))
    except OSError as error:
        logger.warning("cannot notify the service manager at %s: %s", name, error.strerror)
        return False
    return True

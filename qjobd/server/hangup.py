"""Noticing that a client has hung up while the daemon is not reading from it.

A connection's reader runs one command at a time and reads the next request only
when the command is done, so a command that waits (``x-job-wait``, up to its
timeout) would learn that its client is gone only when its reply fails to go out:
until then it keeps its task, its socket and its watch on the job.  The
:class:`HangupWatcher` tells the connection as soon as the client closes its end.

It asks the kernel, not the socket's data: one epoll instance for the whole daemon
holds every client's descriptor with no event requested, and epoll always reports
a hangup (and an error).  A Unix socket reports a hangup only when both directions
are shut, so a client that half-closes (socat after its input ended) and still
reads its replies is not taken for gone; pipelined requests still unread do not
wake the watcher either.  A descriptor epoll cannot watch (stdio on a regular file
or /dev/null) is simply not watched: nothing hangs up there.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable

import trio

__all__ = ["HangupWatcher"]


class HangupWatcher:
    """Calls back, once, when the peer of a watched descriptor has hung up."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        #: Watched descriptor -> what to call when it hangs up.
        self._callbacks: dict[int, Callable[[], None]] = {}

    def watch(self, fd: int, on_hangup: Callable[[], None]) -> bool:
        """Call ``on_hangup`` when ``fd``'s peer is gone; False if ``fd`` cannot be
        watched.  The caller must :meth:`unwatch` before it closes ``fd``."""
        try:
            self._epoll.register(fd, 0)  # EPOLLHUP and EPOLLERR need no asking
        except OSError:
            return False
        self._callbacks[fd] = on_hangup
        return True

    def unwatch(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    async def run(self) -> None:
        """Wait for hangups and report each; until cancelled."""
        while True:
            await trio.lowlevel.wait_readable(self._epoll.fileno())
            for fd, _events in self._epoll.poll(0):
                callback = self._callbacks.get(fd)
                # Level-triggered: forget it now, or it would be reported forever.
                self.unwatch(fd)
                if callback is not None:
                    callback()

    def close(self) -> None:
        self._epoll.close()

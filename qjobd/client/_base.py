# Copied by qjobd-gen-client from qjobd/clientgen/clientbase.py; do not edit.
"""The connection half of every generated client (copied into it as ``_base.py``).

The generated ``Client`` adds one typed method per command to :class:`ClientBase`;
this part owns the ``qemu.qmp`` session: connecting (optionally without negotiating,
so that a caller can read the greeting's capabilities and enable some), the raw
escape hatch :meth:`ClientBase.execute` for commands a schema does not describe, and
:class:`EventStream`, the typed event iterator.

Imports ``qemu.qmp`` and the standard library only: it is copied verbatim.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, Self, TypeVar

from qemu.qmp import EventListener, ExecuteError, QMPClient

__all__ = ["ClientBase", "EventStream", "ExecuteError"]

T = TypeVar("T")

#: A Unix socket path, or a (host, port) pair.
Address = str | tuple[str, int]


class EventStream(Generic[T]):
    """Events of one client as typed objects, in the order the daemon sent them.

    Use it as a context manager: events are collected from ``__enter__`` on, so
    none is lost between starting a job and waiting for its events::

        with client.events() as stream:
            await client.job_cancel(id="job0")
            async for event in stream:
                ...
    """

    def __init__(self, qmp: QMPClient, parse: Callable[[Mapping[str, object]], T],
                 names: Sequence[str] | None = None) -> None:
        self._qmp = qmp
        self._parse = parse
        self._listener = EventListener(list(names) if names else None)
        self._registered = False

    def __enter__(self) -> EventStream[T]:
        self._qmp.register_listener(self._listener)
        self._registered = True
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: types.TracebackType | None) -> None:
        if self._registered:
            self._qmp.remove_listener(self._listener)
            self._registered = False

    def __aiter__(self) -> EventStream[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    async def get(self) -> T:
        """The next event, waiting for it."""
        return self._parse(await self._listener.get())


class ClientBase:
    """A QMP client session on ``qemu.qmp``; see the generated ``Client``."""

    def __init__(self, name: str | None = None) -> None:
        #: The underlying ``qemu.qmp`` client, for what this class does not wrap.
        self.qmp = QMPClient(name)

    async def connect(self, address: Address, *, negotiate: bool = True) -> None:
        """Connect and read the greeting; leave capabilities negotiation mode unless
        ``negotiate`` is false (then call :meth:`negotiate` with what to enable)."""
        self.qmp.negotiate = False
        self.qmp.await_greeting = True
        await self.qmp.connect(address)
        if negotiate:
            await self.negotiate()

    async def negotiate(self, enable: Sequence[str] = ()) -> None:
        """``qmp_capabilities``, enabling the capabilities named in ``enable``."""
        arguments: dict[str, object] = {"enable": list(enable)} if enable else {}
        await self.qmp.execute("qmp_capabilities", arguments)

    @property
    def capabilities(self) -> list[str]:
        """The capabilities the greeting offered."""
        greeting = self.qmp.greeting
        return [] if greeting is None else [str(c) for c in greeting.QMP.capabilities]

    @property
    def version(self) -> Mapping[str, object]:
        """The greeting's ``version`` member (``qemu`` and ``package``)."""
        greeting = self.qmp.greeting
        return {} if greeting is None else dict(greeting.QMP.version)

    async def disconnect(self) -> None:
        await self.qmp.disconnect()

    async def execute(self, name: str, arguments: Mapping[str, object] | None = None) -> object:
        """Run any command by name with JSON arguments; its reply's ``return``.

        :raise ExecuteError: when the daemon answers with an error.
        """
        return await self.qmp.execute(name, arguments)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: types.TracebackType | None) -> None:
        await self.disconnect()

"""One client connection: a reader that runs commands in order and a writer.

The reader feeds bytes to the sans-IO :class:`~qjobd.protocol.session.Session` and
runs the commands it yields one after another, so each client's replies keep the
order of its requests, while other clients' commands run concurrently in their own
tasks.  Everything the client is sent (greeting, replies, events) goes through one
bounded queue drained by the writer, which batches whatever has piled up into one
``send_all``.  Replies wait for room in the queue (that only slows the client that
is not reading); events never wait, and a client whose queue is full is dropped.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Final

import trio

from qjobd.commands.dispatch import Dispatcher
from qjobd.protocol.session import Call, Reply, Session
from qjobd.server.events import EventBus

__all__ = ["OUTGOING_LIMIT", "Connection"]

logger = logging.getLogger(__name__)

#: Messages a client may leave unread before it is dropped.  Generous enough for a
#: burst of job events to a client that reads a little late.
OUTGOING_LIMIT: Final = 4096

#: Bytes asked from the socket per read.
READ_SIZE: Final = 65536

_numbers = itertools.count(1)


class Connection:
    """The life of one client, from greeting to close."""

    def __init__(self, dispatcher: Dispatcher, events: EventBus, greeting: dict[str, Any],
                 stream: trio.abc.Stream) -> None:
        self._dispatcher = dispatcher
        self._events = events
        self.number = next(_numbers)
        self.session = Session(dispatcher.command_specs, greeting)
        self._stream = stream
        self._send, self._receive = trio.open_memory_channel[str](OUTGOING_LIMIT)
        self._scope = trio.CancelScope()
        self._reader_scope = trio.CancelScope()

    def __repr__(self) -> str:
        mode = "command" if self.session.negotiated else "negotiation"
        return f"<Connection {self.number} {mode} mode>"

    # Section: used by the event bus and the daemon

    def offer(self, text: str) -> bool:
        try:
            self._send.send_nowait(text)
        except trio.WouldBlock:
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return True  # closing anyway; nothing to drop
        return True

    def drop(self, reason: str) -> None:
        """Disconnect at once, discarding anything not yet sent."""
        logger.warning("dropping client %d: %s", self.number, reason)
        self._scope.cancel()

    def stop(self) -> None:
        """Stop taking requests; what is queued is still sent."""
        self._reader_scope.cancel()

    # Section: tasks

    async def run(self) -> None:
        logger.debug("client %d connected", self.number)
        with self._scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                self._send.send_nowait(self.session.greeting_text())
                try:
                    with self._reader_scope:
                        await self._reader()
                finally:
                    self._events.unsubscribe(self)
                    self._send.close()
        self._events.unsubscribe(self)
        logger.debug("client %d disconnected", self.number)

    async def _reader(self) -> None:
        session = self.session
        while True:
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            requests = session.receive_data(bytes(data)) if data else session.receive_eof()
            for request in requests:
                await self._run_step(session.classify(request))
            if not data:
                return

    async def _run_step(self, step: Call | Reply) -> None:
        if isinstance(step, Call):
            was_negotiated = self.session.negotiated
            reply = await self._dispatcher.execute(
                step, self.session, step.id if step.has_id else None)
            if self.session.negotiated and not was_negotiated:
                self._events.subscribe(self)
            if reply is None:
                return
            text = reply.text
        else:
            text = step.text
        # send_nowait first: a reply must be queued before anything can cancel us
        # (quit relies on this to get its answer out).
        try:
            self._send.send_nowait(text)
        except trio.WouldBlock:
            await self._send.send(text)

    async def _writer(self) -> None:
        receive = self._receive
        stream = self._stream
        try:
            async for text in receive:
                batch = [text]
                while True:
                    try:
                        batch.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                batch.append("")
                await stream.send_all("\r\n".join(batch).encode("utf-8", "surrogatepass"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._scope.cancel()

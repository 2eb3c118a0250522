"""Fan-out of QMP events to every client in command mode.

The bus is the daemon's :class:`~qjobd.jobs.events.EventSink`.  Each payload is built
through the model from the schema's event type, as replies are, so an emitter whose
payload does not fit the schema fails loudly (a ``ModelError``) instead of sending
clients something QEMU never would.  An event is then encoded once, to the bytes that
go on the wire, and that one bytes object is offered to each subscriber without
waiting: a client that cannot take it (its unsent output is at its bound) is dropped
rather than allowed to hold up the job or the other clients that raised or receive
the event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from qjobd import qjson
from qjobd.model.registry import Model

__all__ = ["EventBus", "Subscriber", "wire_bytes"]

logger = logging.getLogger(__name__)


def wire_bytes(text: str) -> bytes:
    """One encoded message as sent: QEMU ends every message with CR LF."""
    return (text + "\r\n").encode("utf-8", "surrogatepass")


class Subscriber(Protocol):
    def offer(self, data: bytes) -> bool:
        """Queue ``data`` (one message, line end included) without waiting; False when
        it does not fit.  ``data`` is shared by every subscriber: never changed."""

    def drop(self, reason: str) -> None:
        """Disconnect this client."""


class EventBus:
    """Delivers events, in the order they are emitted, to every subscriber."""

    def __init__(self, model: Model, clock: Callable[[], float] = time.time) -> None:
        self._model = model
        self._clock = clock
        self._subscribers: dict[Subscriber, None] = {}
        #: Observers called with (name, data) for every event; used by tests and logs.
        self.observers: list[Callable[[str, dict[str, Any] | None], None]] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers[subscriber] = None

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber, None)

    def emit(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Send event ``name`` with JSON-ready ``data`` (None: no data member).

        :raise ModelError: ``data`` does not fit the event's schema type.
        """
        data = self._model.event_data(name, data)
        now = self._clock()
        seconds = int(now)
        message: dict[str, Any] = {
            "timestamp": {"seconds": seconds, "microseconds": int((now - seconds) * 1e6)},
            "event": name,
        }
        if data is not None:
            message["data"] = data
        wire = wire_bytes(qjson.encode(message))
        for observer in self.observers:
            observer(name, data)
        for subscriber in list(self._subscribers):
            if not subscriber.offer(wire):
                self.unsubscribe(subscriber)
                subscriber.drop(f"event {name} ({len(wire)} bytes) does not fit its unsent output")

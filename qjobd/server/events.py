"""Fan-out of QMP events to every client in command mode.

The bus is the daemon's :class:`~qjobd.jobs.events.EventSink`.  Each payload is built
through the model from the schema's event type, as replies are, so an emitter whose
payload does not fit the schema fails loudly (a ``ModelError``) instead of sending
clients something QEMU never would.  An event is then encoded once, to the bytes that
go on the wire, and that one bytes object is offered to each subscriber without
waiting: a client that cannot take it (its unsent output is at its bound) is dropped
rather than allowed to hold up the job or the other clients that raised or receive
the event.

Some events are qjobd's own and go only to the clients that enabled the capability
that brings them (:data:`GATED`): a client that did not ask sees QEMU's events only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from qjobd import qjson
from qjobd.model.registry import Model

__all__ = ["GATED", "PROGRESS_CAPABILITY", "EventBus", "Subscriber", "wire_bytes"]

logger = logging.getLogger(__name__)

#: The capability that brings JOB_PROGRESS events.
PROGRESS_CAPABILITY: Final = "x-qjobd-progress"

#: Events sent only to the clients that enabled a capability: event -> capability.
GATED: Final[Mapping[str, str]] = {"JOB_PROGRESS": PROGRESS_CAPABILITY}


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
        #: Every client in command mode -> the capabilities it enabled.
        self._subscribers: dict[Subscriber, frozenset[str]] = {}
        #: Observers called with (name, data) for every event all clients get (not
        #: the GATED ones); used by tests and logs.
        self.observers: list[Callable[[str, dict[str, Any] | None], None]] = []

    def subscribe(self, subscriber: Subscriber,
                  capabilities: frozenset[str] = frozenset()) -> None:
        self._subscribers[subscriber] = capabilities

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber, None)

    def emit(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Send event ``name`` with JSON-ready ``data`` (None: no data member).

        :raise ModelError: ``data`` does not fit the event's schema type.
        """
        data = self._model.event_data(name, data)
        capability = GATED.get(name)
        if capability is None:
            for observer in self.observers:
                observer(name, data)
            self._fan_out(name, self._wire(name, data), None)
        elif any(capability in caps for caps in self._subscribers.values()):
            self._fan_out(name, self._wire(name, data), capability)

    def encode(self, name: str, data: dict[str, Any] | None) -> bytes:
        """Event ``name`` as sent now: checked against the schema, stamped, encoded.

        :raise ModelError: ``data`` does not fit the event's schema type.
        """
        return self._wire(name, self._model.event_data(name, data))

    def _wire(self, name: str, data: Any) -> bytes:
        now = self._clock()
        seconds = int(now)
        message: dict[str, Any] = {
            "timestamp": {"seconds": seconds, "microseconds": int((now - seconds) * 1e6)},
            "event": name,
        }
        if data is not None:
            message["data"] = data
        return wire_bytes(qjson.encode(message))

    def _fan_out(self, name: str, wire: bytes, capability: str | None) -> None:
        for subscriber, capabilities in list(self._subscribers.items()):
            if capability is not None and capability not in capabilities:
                continue
            if not subscriber.offer(wire):
                self.unsubscribe(subscriber)
                subscriber.drop(f"event {name} ({len(wire)} bytes) does not fit its unsent output")

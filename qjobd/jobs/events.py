"""Where jobs send their events: a small protocol, so jobs never see the server.

The daemon's event bus (:class:`qjobd.server.events.EventBus`) implements it: it
checks each payload against the schema's event type and fans it out to the clients.
Tests pass a recorder.  Payloads are JSON-ready dicts with the schema's member names.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["EventSink"]


class EventSink(Protocol):
    def emit(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Send event ``name``; ``data`` None means the event carries no data member."""

"""The bundled schema's model, built once per test session."""

from __future__ import annotations

from functools import cache

from qjobd.model.registry import Model
from qjobd.qapi.schema import Schema
from qjobd.schema_path import bundled_schema_path
from qjobd.server.daemon import DEFINED_SYMBOLS
from qjobd.server.events import EventBus


@cache
def schema_model() -> Model:
    """The model the daemon builds (about half a second, so shared)."""
    return Model(Schema(str(bundled_schema_path())), DEFINED_SYMBOLS)


def event_bus() -> EventBus:
    """A daemon's event bus: every payload is checked against the schema."""
    return EventBus(schema_model())

"""Events are built through the model: a payload the schema does not allow fails."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.events import EventRecorder
from helpers.model import event_bus

from qjobd.model.errors import ModelError


def test_valid_payload_is_delivered_in_schema_form() -> None:
    bus = event_bus()
    recorder = EventRecorder(bus)
    bus.emit("BLOCK_JOB_COMPLETED", {"type": "backup", "device": "j", "len": 4,
                                     "offset": 4, "speed": 0, "error": "Input/output error"})
    bus.emit("JOB_STATUS_CHANGE", {"id": "j", "status": "null"})
    assert recorder.seen == [
        ("BLOCK_JOB_COMPLETED", {"type": "backup", "device": "j", "len": 4, "offset": 4,
                                 "speed": 0, "error": "Input/output error"}),
        ("JOB_STATUS_CHANGE", {"id": "j", "status": "null"}),
    ]


@pytest.mark.parametrize(("name", "data", "why"), [
    ("JOB_STATUS_CHANGE", {"id": "j", "status": "sleeping"},
     "JOB_STATUS_CHANGE: Parameter 'status' does not accept value 'sleeping'"),
    ("JOB_STATUS_CHANGE", {"id": "j"}, "JOB_STATUS_CHANGE: Parameter 'status' is missing"),
    ("BLOCK_JOB_READY", {"type": "mirror", "device": "m", "len": 1, "offset": 1,
                         "speed": 0, "progress": 1},
     "BLOCK_JOB_READY: Parameter 'progress' is unexpected"),
    ("BLOCK_JOB_ERROR", {"device": "m", "operation": "read", "action": "explode"},
     "BLOCK_JOB_ERROR: Parameter 'action' does not accept value 'explode'"),
    ("JOB_EXPLODED", {"id": "j"}, "event JOB_EXPLODED is not in the schema"),
])
def test_payload_outside_the_schema_is_refused(name: str, data: dict[str, Any],
                                               why: str) -> None:
    bus = event_bus()
    recorder = EventRecorder(bus)
    with pytest.raises(ModelError) as caught:
        bus.emit(name, data)
    assert why in str(caught.value)
    assert recorder.seen == []

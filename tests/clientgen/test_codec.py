"""A generated client's types follow QAPI's JSON rules, both ways.

The client of tests/clientgen/schemas/codec.json has every kind of type: enums
with values Python cannot spell, a struct with a base and reserved member names,
a flat union with an implicit empty branch, alternates of every JSON kind, JSON
null, events, and a command named like a Client method.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import pytest


def test_enum_members_and_conditional_values(codec: ModuleType) -> None:
    colour = codec.models.Colour
    assert [c.name for c in colour] == ["RED", "LIGHT_BLUE", "V_4K", "ULTRAVIOLET"]
    assert colour("light-blue") is colour.LIGHT_BLUE
    # Conditions are not evaluated: the value is there, and its docstring says when.
    assert "``ultraviolet`` (only if CONFIG_UV)" in colour.__doc__


def test_struct_wire_names_and_omitted_optionals(codec: ModuleType) -> None:
    m = codec.models
    paint = m.Paint(kind=m.Colour.V_4K, in_=1, size_bytes=5)
    assert paint.to_json() == {"kind": "4k", "in": 1, "size-bytes": 5}
    full = m.Paint(kind=m.Colour.RED, note="n", in_=2, str_="s", size_bytes=0,
                   tags=["a"], extra={"any": [1]}, ratio=0.5)
    wire = full.to_json()
    assert list(wire) == ["kind", "note", "in", "str", "size-bytes", "tags", "extra", "ratio"]
    assert m.Paint.from_json(wire) == full
    # An integer is a number; members the schema lacks are ignored (newer daemons).
    assert m.Paint.from_json({**wire, "ratio": 1, "new-member": True}).ratio == 1.0


def test_flat_union_branches(codec: ModuleType) -> None:
    m = codec.models
    red = m.Shape_red(note="x", depth=3)
    assert red.kind is m.Colour.RED
    assert red.to_json() == {"kind": "red", "note": "x", "depth": 3}
    assert m.Shape.from_json(red.to_json()) == red
    blue = m.Shape.from_json({"kind": "light-blue", "shades": ["red", "4k"]})
    assert isinstance(blue, m.Shape_light_blue)
    assert blue.shades == [m.Colour.RED, m.Colour.V_4K]
    empty = m.Shape.from_json({"kind": "4k"})  # no branch in the schema: q_empty
    assert type(empty) is m.Shape_v_4k
    assert empty.to_json() == {"kind": "4k"}


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "green"}, "Shape.kind: 'green' is not a value of Colour"),
    ({"note": "x"}, "Shape: member 'kind' is missing"),
    ({"kind": "red", "depth": "3"}, "Shape.depth: expected an integer, got a string"),
    ({"kind": "red", "depth": True}, "Shape.depth: expected an integer, got a boolean"),
    ([], "Shape: expected an object, got an array"),
])
def test_decode_errors_say_where(codec: ModuleType, data: Any, message: str) -> None:
    with pytest.raises(codec.DecodeError) as error:
        codec.models.Shape.from_json(data)
    assert str(error.value) == message


def test_alternates_by_json_type_and_null(codec: ModuleType) -> None:
    m = codec.models
    holder = m.Holder(thing=codec.NULL, things=["n", codec.NULL, m.Shape_red(depth=1)],
                      mix=m.Finish.GLOSS, count=True, shapes=[m.Shape_v_4k()])
    wire = holder.to_json()
    assert wire == {"thing": None, "things": ["n", None, {"kind": "red", "depth": 1}],
                    "mix": "gloss", "count": True, "shapes": [{"kind": "4k"}]}
    assert m.Holder.from_json(wire) == holder
    # None is "absent", NULL is JSON null: both survive.
    assert m.Holder(things=[], shapes=[]).to_json() == {"things": [], "shapes": []}
    assert m.Holder.from_json({"things": [], "shapes": []}).thing is None
    assert m.decode_CountOrFlag(3) == 3
    assert m.decode_CountOrFlag(False) is False
    assert m.decode_FinishOrRatio(2) == 2.0
    assert m.decode_FinishOrRatio("matte") is m.Finish.MATTE
    with pytest.raises(codec.DecodeError, match="Anything: expected an object or a string "
                       "or null, got an integer"):
        m.decode_Anything(1)


def test_events_typed_and_unknown(codec: ModuleType) -> None:
    message = {"event": "PAINTED", "data": {"colour": "red", "timestamp": 7},
               "timestamp": {"seconds": 100, "microseconds": 250000}}
    event = codec.parse_event(message)
    assert isinstance(event, codec.events.PaintedEvent)
    assert event.colour is codec.models.Colour.RED
    assert event.timestamp_ == 7  # the data member, renamed
    assert event.timestamp == 100.25
    assert event.raw is message
    assert "the colour used" in codec.events.PaintedEvent.__doc__
    assert isinstance(codec.parse_event({"event": "DRIED"}), codec.events.DriedEvent)
    other = codec.parse_event({"event": "NEWER", "data": {"x": 1}})
    assert isinstance(other, codec.UnknownEvent)
    assert (other.name, other.data) == ("NEWER", {"x": 1})


def test_commands_as_typed_methods(codec: ModuleType) -> None:
    client = codec.Client
    paint = inspect.signature(client.paint)
    assert list(paint.parameters) == ["self", "colour", "shape", "if_"]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(paint.parameters.values())[1:])
    assert paint.return_annotation == "_m.Holder"
    assert "which colour" in client.paint.__doc__
    assert ":returns: what was painted" in client.paint.__doc__
    # A boxed union is one positional argument; a command named like a Client
    # method gets a trailing underscore.
    mix = inspect.signature(client.mix)
    assert [p.kind for p in mix.parameters.values()][1] is inspect.Parameter.POSITIONAL_ONLY
    assert inspect.iscoroutinefunction(client.execute_)
    assert client.execute is codec.Client.__mro__[1].execute

"""Return values and event data (QEMU's output visitor), and round trips."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qjobd.model import ABSENT, Model
from qjobd.model.build import (
    AlternateNode,
    ArrayNode,
    BuiltinNode,
    EnumNode,
    Node,
    ObjectNode,
)


def test_struct_return_omits_absent_members(test_model: Model) -> None:
    py = test_model.py
    value = py.Scalars(s="x", n=1, u64=2**64 - 1, b=False, z=None, i8=-1)
    out = test_model.unstructure_return("scalars", value)
    assert out == {"s": "x", "n": 1.0, "i8": -1, "u64": 2**64 - 1, "b": False, "z": None}
    assert list(out) == ["s", "n", "i8", "u64", "b", "z"]  # member order
    assert type(out["n"]) is float
    assert test_model.unstructure_return("scalars", py.Scalars()) == {}
    assert test_model.unstructure_return("scalars", py.Scalars(a=None, z=ABSENT)) == {"a": None}


def test_enum_return(test_model: Model) -> None:
    colour = test_model.enum("Colour")
    out = test_model.unstructure_return("paint", colour.green_ish)
    assert out == "green-ish"
    assert type(out) is str
    assert test_model.unstructure_return("paint", "red") == "red"
    with pytest.raises(KeyError):
        test_model.unstructure_return("paint", "blue")


def test_list_and_any_returns(test_model: Model) -> None:
    py = test_model.py
    points = [py.Point(x=1, y=2), py.Point(x=3, y=4)]
    assert test_model.unstructure_return("get-list", points) == [
        {"x": 1, "y": 2},
        {"x": 3, "y": 4},
    ]
    assert test_model.unstructure_return("get-list", []) == []
    assert test_model.unstructure_return("get-any", {"k": [1, None]}) == {"k": [1, None]}
    assert test_model.unstructure_return("get-any", None) is None


def test_no_returns_means_empty_object(test_model: Model) -> None:
    assert test_model.unstructure_return("ping", None) == {}
    assert test_model.unstructure_return("ordered", None) == {}


def test_nested_and_union_returns(test_model: Model) -> None:
    py = test_model.py
    shape = py.Shape(
        name="s", origin=py.Point3(x=1, y=2, z=3, label="o"), tags=["a"], if_="i", only_if="o"
    )
    assert test_model.unstructure_return("draw", [shape]) == [
        {
            "name": "s",
            "origin": {"x": 1, "y": 2, "z": 3, "label": "o"},
            "tags": ["a"],
            "if": "i",
            "only-if": "o",
        }
    ]
    animal = test_model.enum("Animal")
    dog = py.Pet(kind=animal.dog, age=2, u=py.DogOptions(name="rex", friend="tom"))
    out = test_model.unstructure_return("adopt", dog)
    assert out == {"kind": "dog", "age": 2, "name": "rex", "friend": "tom"}
    assert list(out) == ["kind", "age", "name", "friend"]
    assert test_model.unstructure_return("adopt", py.Pet(kind="bird")) == {"kind": "bird"}
    vehicle = py.Vehicle(wheels=4, type="car", u=py.CarOptions(seats=2))
    assert test_model.unstructure_return("add-vehicle", vehicle) == {
        "wheels": 4,
        "type": "car",
        "seats": 2,
    }


def test_alternate_returns(test_model: Model) -> None:
    py = test_model.py
    colour = test_model.enum("Colour")
    value = py.Alternates(
        ref=py.Pet(kind="cat", u=py.CatOptions(lives=9)),
        ref_or_null=None,
        num=True,
        small=colour.red,
        sizes=[1, 2],
        refs=["a", py.Pet(kind="bird")],
    )
    assert test_model.unstructure_return("alternates", value) == {
        "ref": {"kind": "cat", "lives": 9},
        "ref-or-null": None,
        "num": True,
        "small": "red",
        "sizes": [1, 2],
        "refs": ["a", {"kind": "bird"}],
    }
    assert test_model.unstructure_return("alternates", py.Alternates(num=3, small=7)) == {
        "num": 3.0,
        "small": 7,
    }


def test_wrong_values_are_programming_errors(test_model: Model) -> None:
    py = test_model.py
    with pytest.raises(TypeError):
        test_model.unstructure_return("get-list", [py.Point3(x=1, y=2, z=3)])
    with pytest.raises(TypeError):
        test_model.unstructure_return("adopt", py.Pet(kind="cat", u=py.DogOptions(name="x")))
    with pytest.raises(TypeError):
        test_model.unstructure_return("alternates", py.Alternates(ref=5))


def test_events(test_model: Model) -> None:
    py = test_model.py
    pet = py.Pet(kind="cat", u=py.CatOptions(lives=1, indoor=True))
    data = py.PetAdoptedData(pet=pet, note=None)
    assert test_model.unstructure_event("PET_ADOPTED", data) == {
        "pet": {"kind": "cat", "lives": 1, "indoor": True},
        "note": None,
    }
    assert test_model.unstructure_event("RESET", None) is None
    assert test_model.events["RESET"].data_type is None
    vehicle = py.Vehicle(id="v", wheels=2, type="bike")
    assert test_model.events["VEHICLE_ADDED"].boxed
    assert test_model.unstructure_event("VEHICLE_ADDED", vehicle) == {
        "id": "v",
        "wheels": 2,
        "type": "bike",
    }


def test_classes_are_frozen_value_objects(test_model: Model) -> None:
    py = test_model.py
    point = py.Point(x=1, y=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        point.x = 5  # type: ignore[misc]
    assert attrs.evolve(point, x=5) == py.Point(x=5, y=2)
    assert py.Point.__qapi_name__ == "Point"
    assert py.DrawArgs.__qapi_name__ == "q_obj_draw-arg"
    assert [f.metadata["qapi"] for f in attrs.fields(py.Shape)] == [
        "name",
        "origin",
        "points",
        "tags",
        "if",
        "only-if",
    ]
    with pytest.raises(TypeError):
        py.Point(1, 2)  # keyword-only


def test_kwargs_helper(test_model: Model) -> None:
    args = test_model.structure_args("ordered", {"first": "a", "third": True})
    assert Model.kwargs(args) == {"first": "a", "second": None, "third": True}
    assert Model.kwargs(None) == {}


# -- round trips ------------------------------------------------------------------------

ROUND_TRIPS: list[tuple[str, dict[str, Any]]] = [
    (
        "scalars",
        {
            "s": "x",
            "n": 0.5,
            "i": -1,
            "i8": 127,
            "u64": 2**64 - 1,
            "sz": 0,
            "b": True,
            "z": None,
            "a": [{"x": None}],
        },
    ),
    ("scalar-lists", {"s": ["a"], "n": [1.5], "u8": [255], "e": ["red", "green-ish"]}),
    (
        "draw",
        {
            "shape": {
                "name": "s",
                "origin": {"x": 1, "y": 2, "z": 3, "label": "l"},
                "points": [{"x": 0, "y": 0}],
                "if": "x",
            },
            "scale": 2.5,
        },
    ),
    (
        "adopt",
        {
            "pet": {
                "kind": "dog",
                "age": 1,
                "name": "rex",
                "tricks": ["sit"],
                "friend": {"kind": "cat", "lives": 3},
            },
            "others": [{"kind": "bird"}, {"kind": "cat", "lives": 1, "indoor": False}],
        },
    ),
    ("add-vehicle", {"id": "v", "wheels": 4, "type": "car", "seats": 5}),
    (
        "alternates",
        {
            "ref": "x",
            "ref-or-null": None,
            "num": 1.5,
            "small": "red",
            "sizes": [1, -1],
            "refs": [{"kind": "bird"}, "y"],
        },
    ),
    ("alternates", {"ref-or-null": {"kind": "bird"}, "num": False, "small": 0, "sizes": 7}),
]


@pytest.mark.parametrize(("command", "arguments"), ROUND_TRIPS)
def test_round_trip(test_model: Model, command: str, arguments: dict[str, Any]) -> None:
    args = test_model.structure_args(command, arguments)
    assert test_model.converter.unstructure(args) == arguments


def _strategy(model: Model, node: Node, depth: int = 0) -> st.SearchStrategy[Any]:
    """Valid, canonical JSON values of a type (numbers as floats, uints >= 0)."""
    if isinstance(node, BuiltinNode):
        ranges = {
            "int": (-(2**63), 2**63 - 1),
            "int64": (-(2**63), 2**63 - 1),
            "int8": (-128, 127),
            "int16": (-(2**15), 2**15 - 1),
            "int32": (-(2**31), 2**31 - 1),
            "uint8": (0, 255),
            "uint16": (0, 2**16 - 1),
            "uint32": (0, 2**32 - 1),
            "uint64": (0, 2**64 - 1),
            "size": (0, 2**64 - 1),
        }
        if node.name in ranges:
            lo, hi = ranges[node.name]
            return st.integers(lo, hi)
        json = st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=3),
            lambda inner: (
                st.lists(inner, max_size=2)
                | st.dictionaries(st.text(max_size=3), inner, max_size=2)
            ),
            max_leaves=4,
        )
        return {
            "str": st.text(max_size=5),
            "number": st.floats(allow_nan=False, allow_infinity=False),
            "bool": st.booleans(),
            "null": st.none(),
            "any": json,
        }[node.name]
    if isinstance(node, EnumNode):
        return st.sampled_from(node.values)
    if isinstance(node, ArrayNode):
        return st.lists(_strategy(model, node.element, depth + 1), max_size=2 if depth < 3 else 0)
    if isinstance(node, AlternateNode):
        branches = [b for _, b in node.branches if depth < 3 or not isinstance(b, ObjectNode)]
        return st.one_of([_strategy(model, b, depth + 1) for b in branches])
    members = list(node.members)
    if node.tag is not None:
        tag_values = list(node.branches)
        return st.sampled_from(tag_values).flatmap(
            lambda value: _object(model, members, node.branches[value], value, node, depth)
        )
    return _object(model, members, None, None, node, depth)


def _object(
    model: Model,
    members: list[Any],
    branch: ObjectNode | None,
    tag_value: str | None,
    node: ObjectNode,
    depth: int,
) -> st.SearchStrategy[dict[str, Any]]:
    if branch is not None:
        members = members + branch.members
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for m in members:
        strategy = _strategy(model, m.type, depth + 1)
        if node.tag is not None and m.name == node.tag.name:
            strategy = st.just(tag_value)
        (optional if m.optional else required)[m.name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


@pytest.mark.parametrize(
    "command", ["scalars", "scalar-lists", "draw", "adopt", "add-vehicle", "alternates"]
)
def test_round_trip_property(test_model: Model, command: str) -> None:
    info = test_model.commands[command]
    assert info.arg_type is not None
    node = test_model._nodes[info.arg_type.__qapi_name__]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_strategy(test_model, node))
    def check(arguments: dict[str, Any]) -> None:
        args = test_model.structure_args(command, arguments)
        again = test_model.converter.unstructure(args)
        assert again == arguments
        assert test_model.structure_args(command, again) == args

    check()


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["i", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "sz"]),
    st.integers(-(2**66), 2**66) | st.sampled_from([-(2**63) - 1, 2**63, 2**64, -1, 0]),
)
def test_integer_ranges_property(test_model: Model, member: str, value: int) -> None:
    signed = member in ("i", "i8", "i16", "i32", "i64")
    bits = {"i": 64, "i64": 64, "u64": 64, "sz": 64}.get(member) or int(member.lstrip("iu"))
    from qjobd.model import ArgumentError

    try:
        got: Any = test_model.structure_args("scalars", {member: value})
    except ArgumentError as exc:
        got = exc.desc
    if signed:
        if not -(2**63) <= value < 2**63:
            assert got == f"Invalid parameter type for '{member}', expected: integer"
        elif not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            assert got == f"Parameter '{member}' expects int{bits}_t"
        else:
            assert getattr(got, member) == value
    else:
        if not -(2**63) <= value < 2**64:
            assert got == f"Parameter '{member}' expects uint64"
        elif value % 2**64 >= 2**bits:
            assert got == f"Parameter '{member}' expects uint{bits}_t"
        else:
            assert getattr(got, member) == value % 2**64


def test_number_special_values(test_model: Model) -> None:
    py = test_model.py
    out = test_model.unstructure_return("scalars", py.Scalars(n=math.inf))
    assert out == {"n": math.inf}

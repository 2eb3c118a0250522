"""Structuring arguments with QEMU's input-visitor rules, on schemas/model-test.json.

The expected texts follow the rules verified against qemu-storage-daemon 7.2 in
test_qsd_recorded.py (same message templates, same naming rules), applied to the
fixture's own members.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from qjobd.model import ABSENT, ArgumentError, Model

I64 = 2**63
U64 = 2**64


def outcome(model: Model, command: str, arguments: dict[str, Any] | None) -> Any:
    """The structured arguments, or the error text."""
    try:
        return model.structure_args(command, arguments)
    except ArgumentError as exc:
        return exc.desc


def member_outcome(model: Model, command: str, member: str, value: Any) -> Any:
    """The structured value of one member, or the error text."""
    result = outcome(model, command, {member: value})
    if isinstance(result, str):
        return result
    return getattr(result, member.replace("-", "_"))


def type_error(name: str, expected: str) -> str:
    return f"Invalid parameter type for '{name}', expected: {expected}"


# (member, value, structured value or error text)
SCALARS: list[tuple[str, Any, Any]] = [
    ("s", "x", "x"),
    ("s", "", ""),
    ("s", 1, type_error("s", "string")),
    ("s", None, type_error("s", "string")),
    ("s", ["x"], type_error("s", "string")),
    ("n", 1.5, 1.5),
    ("n", -0.0, -0.0),
    ("n", 1, 1.0),
    ("n", U64, float(U64)),
    ("n", 10**400, math.inf),
    ("n", -(10**400), -math.inf),
    ("n", True, type_error("n", "number")),
    ("n", "1", type_error("n", "number")),
    ("b", True, True),
    ("b", False, False),
    ("b", 0, type_error("b", "boolean")),
    ("b", "true", type_error("b", "boolean")),
    ("b", None, type_error("b", "boolean")),
    ("z", None, None),
    ("z", 0, type_error("z", "null")),
    ("z", False, type_error("z", "null")),
    ("z", {}, type_error("z", "null")),
    ("a", {"x": [1, None]}, {"x": [1, None]}),
    ("a", None, None),
    ("a", 1.5, 1.5),
]


def _int_rows() -> list[tuple[str, Any, Any]]:
    rows: list[tuple[str, Any, Any]] = []
    for member in ("i", "i64"):
        rows += [
            (member, -I64, -I64),
            (member, I64 - 1, I64 - 1),
            (member, 0, 0),
            (member, I64, type_error(member, "integer")),
            (member, -I64 - 1, type_error(member, "integer")),
            (member, 1.0, type_error(member, "integer")),
            (member, True, type_error(member, "integer")),
            (member, "1", type_error(member, "integer")),
            (member, None, type_error(member, "integer")),
        ]
    for member, bits in (("i8", 8), ("i16", 16), ("i32", 32)):
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        label = f"Parameter '{member}' expects int{bits}_t"
        rows += [
            (member, lo, lo),
            (member, hi, hi),
            (member, lo - 1, label),
            (member, hi + 1, label),
            (member, I64 - 1, label),
            (member, I64, type_error(member, "integer")),
            (member, 1.0, type_error(member, "integer")),
            (member, False, type_error(member, "integer")),
        ]
    for member, bits in (("u8", 8), ("u16", 16), ("u32", 32)):
        hi = 2**bits - 1
        label = f"Parameter '{member}' expects uint{bits}_t"
        rows += [
            (member, 0, 0),
            (member, hi, hi),
            (member, hi + 1, label),
            (member, -1, label),  # wraps to 2**64 - 1 first
            (member, -I64, label),
            (member, U64 - 1, label),
            (member, U64, f"Parameter '{member}' expects uint64"),
            (member, -I64 - 1, f"Parameter '{member}' expects uint64"),
            (member, 1.0, f"Parameter '{member}' expects uint64"),
            (member, "1", f"Parameter '{member}' expects uint64"),
            (member, True, f"Parameter '{member}' expects uint64"),
            (member, None, f"Parameter '{member}' expects uint64"),
        ]
    for member in ("u64", "sz"):
        rows += [
            (member, 0, 0),
            (member, U64 - 1, U64 - 1),
            (member, -1, U64 - 1),
            (member, -I64, I64),
            (member, U64, f"Parameter '{member}' expects uint64"),
            (member, -I64 - 1, f"Parameter '{member}' expects uint64"),
            (member, 0.0, f"Parameter '{member}' expects uint64"),
            (member, False, f"Parameter '{member}' expects uint64"),
            (member, [], f"Parameter '{member}' expects uint64"),
        ]
    return rows


@pytest.mark.parametrize(("member", "value", "expected"), SCALARS + _int_rows())
def test_scalar(test_model: Model, member: str, value: Any, expected: Any) -> None:
    got = member_outcome(test_model, "scalars", member, value)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("member", "value", "expected"),
    [
        ("s", ["a", 1], type_error("s[1]", "string")),
        ("n", [1, "x"], type_error("n[1]", "number")),
        ("i8", [1, 200], "Parameter 'null' expects int8_t"),
        ("i8", [1.0], type_error("i8[0]", "integer")),
        ("u8", [1, -1], "Parameter 'null' expects uint8_t"),
        ("u64", [1.5], "Parameter 'u64[0]' expects uint64"),
        ("b", [True, 1], type_error("b[1]", "boolean")),
        ("e", ["red", "blue"], "Parameter 'null' does not accept value 'blue'"),
        ("e", ["red", 1], type_error("e[1]", "string")),
        ("s", "a", type_error("s", "array")),
        ("s", {}, type_error("s", "array")),
        ("a", {"x": 1}, type_error("a", "array")),
    ],
)
def test_scalar_list_errors(test_model: Model, member: str, value: Any, expected: str) -> None:
    assert outcome(test_model, "scalar-lists", {member: value}) == expected


def test_scalar_lists(test_model: Model) -> None:
    colour = test_model.enum("Colour")
    args = test_model.structure_args(
        "scalar-lists",
        {"s": [], "n": [1, 2.5], "u64": [-1], "a": [None, {}], "e": ["red", "green-ish"]},
    )
    assert args.s == []
    assert args.n == [1.0, 2.5]
    assert args.u64 == [U64 - 1]
    assert args.a == [None, {}]
    assert args.e == [colour.red, colour.green_ish]
    assert args.b is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "Parameter 'first' is missing"),
        ({"third": 1, "x": 1}, "Parameter 'first' is missing"),
        ({"first": 1}, type_error("first", "string")),
        ({"first": "a", "third": 1, "second": "x"}, type_error("second", "integer")),
        ({"first": "a", "second": 1}, "Parameter 'third' is missing"),
        ({"first": "a", "third": 1}, type_error("third", "boolean")),
        ({"first": "a", "third": True, "x": 1}, "Parameter 'x' is unexpected"),
        ({"first": "a", "third": True, "Third": 1}, "Parameter 'Third' is unexpected"),
    ],
)
def test_member_order(test_model: Model, arguments: dict[str, Any], expected: str) -> None:
    assert outcome(test_model, "ordered", arguments) == expected


def test_optional_absent_and_present(test_model: Model) -> None:
    args = test_model.structure_args("ordered", {"third": False, "first": "a"})
    assert (args.first, args.second, args.third) == ("a", None, False)
    assert type(args).__name__ == "OrderedArgs"


def test_enums(test_model: Model, plain_model: Model) -> None:
    colour = test_model.enum("Colour")
    args = test_model.structure_args("paint", {"colour": "infra-red", "awkward": "if"})
    assert args.colour is colour.infra_red
    assert args.colour == "infra-red"
    assert args.awkward is test_model.enum("Awkward").if_
    assert outcome(plain_model, "paint", {"colour": "infra-red"}) == (
        "Parameter 'colour' does not accept value 'infra-red'"
    )
    assert outcome(test_model, "paint", {"colour": 1}) == type_error("colour", "string")
    assert outcome(test_model, "paint", {"colour": "Red"}) == (
        "Parameter 'colour' does not accept value 'Red'"
    )


def test_enum_python_names(test_model: Model) -> None:
    awkward = test_model.enum("Awkward")
    assert [(m.name, m.value) for m in awkward] == [
        ("if_", "if"),
        ("mro_", "mro"),
        ("name", "name"),
        ("value", "value"),
        ("q2nd", "2nd"),
        ("q__org_example_x", "__org.example_x"),
    ]
    assert awkward("2nd") is awkward.q2nd


SHAPE = {"name": "s", "origin": {"x": 1, "y": 2, "z": 3}}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "Parameter 'shape' is missing"),
        ({"shape": []}, type_error("shape", "object")),
        ({"shape": {"name": "s"}}, "Parameter 'shape.origin' is missing"),
        ({"shape": {"name": "s", "origin": {"z": 1}}}, "Parameter 'shape.origin.x' is missing"),
        ({"shape": {"name": "s", "origin": None}}, type_error("shape.origin", "object")),
        ({"shape": {**SHAPE, "points": [{"x": 1}]}}, "Parameter 'shape.points[0].y' is missing"),
        (
            {"shape": {**SHAPE, "points": [{"x": 1, "y": 1}, 5]}},
            type_error("shape.points[1]", "object"),
        ),
        (
            {"shape": {**SHAPE, "points": [{"x": 1, "y": "1"}]}},
            type_error("shape.points[0].y", "integer"),
        ),
        (
            {"shape": {**SHAPE, "points": [{"x": 1, "y": 1, "q": 1}]}},
            "Parameter 'shape.points[0].q' is unexpected",
        ),
        ({"shape": {**SHAPE, "tags": ["a", None]}}, type_error("shape.tags[1]", "string")),
        # the nested object's leftovers are reported before the outer 'scale'
        (
            {"shape": {"name": "s", "origin": {"x": 1, "y": 2, "z": 3, "w": 0}}, "scale": "big"},
            "Parameter 'shape.origin.w' is unexpected",
        ),
        ({"shape": {**SHAPE, "w": 0}, "scale": "big"}, "Parameter 'shape.w' is unexpected"),
        ({"shape": SHAPE, "scale": "big"}, type_error("scale", "number")),
        ({"shape": {**SHAPE, "if": 1}}, type_error("shape.if", "string")),
    ],
)
def test_nested_errors(test_model: Model, arguments: dict[str, Any], expected: str) -> None:
    assert outcome(test_model, "draw", arguments) == expected


def test_nested_structs(test_model: Model, plain_model: Model) -> None:
    py = test_model.py
    args = test_model.structure_args(
        "draw",
        {
            "shape": {**SHAPE, "points": [{"x": 1, "y": 2}], "if": "yes", "only-if": "ir"},
            "scale": 2,
        },
    )
    assert args == py.DrawArgs(
        shape=py.Shape(
            name="s",
            origin=py.Point3(x=1, y=2, z=3),
            points=[py.Point(x=1, y=2)],
            if_="yes",
            only_if="ir",
        ),
        scale=2.0,
    )
    # a member whose condition fails does not exist
    assert outcome(plain_model, "draw", {"shape": {**SHAPE, "only-if": "ir"}}) == (
        "Parameter 'shape.only-if' is unexpected"
    )
    assert "only_if" not in attrs.fields_dict(plain_model.py.Shape)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"pet": {}}, "Parameter 'pet.kind' is missing"),
        ({"pet": {"kind": "cow"}}, "Parameter 'kind' does not accept value 'cow'"),
        ({"pet": {"kind": 1}}, type_error("pet.kind", "string")),
        ({"pet": {"lives": 300, "kind": "cat"}}, "Parameter 'lives' expects uint8_t"),
        ({"pet": {"kind": "cat", "age": "x", "lives": 300}}, type_error("pet.age", "integer")),
        ({"pet": {"kind": "cat"}}, "Parameter 'pet.lives' is missing"),
        ({"pet": {"kind": "dog"}}, "Parameter 'pet.name' is missing"),
        (
            {"pet": {"kind": "dog", "name": "rex", "lives": 1}},
            "Parameter 'pet.lives' is unexpected",
        ),
        ({"pet": {"kind": "bird", "name": "x"}}, "Parameter 'pet.name' is unexpected"),
        (
            {"pet": {"kind": "dog", "name": "rex", "friend": 5}},
            "Invalid parameter type for 'friend', expected: PetRef",
        ),
        (
            {"pet": {"kind": "dog", "name": "rex", "friend": {"kind": "dog"}}},
            "Parameter 'pet.friend.name' is missing",
        ),
        (
            {"pet": {"kind": "bird"}, "others": [{"kind": "cat", "lives": 1}, {"kind": "dog"}]},
            "Parameter 'others[1].name' is missing",
        ),
        (
            {"pet": {"kind": "bird"}, "others": [{"kind": "cat", "lives": 1, "x": 1}]},
            "Parameter 'others[0].x' is unexpected",
        ),
    ],
)
def test_union_errors(test_model: Model, arguments: dict[str, Any], expected: str) -> None:
    assert outcome(test_model, "adopt", arguments) == expected


def test_unions(test_model: Model) -> None:
    py = test_model.py
    animal = test_model.enum("Animal")
    args = test_model.structure_args("adopt", {"pet": {"lives": 9, "kind": "cat", "age": 3}})
    assert args.pet == py.Pet(kind=animal.cat, age=3, u=py.CatOptions(lives=9))
    assert args.others is None
    bird = test_model.structure_args("adopt", {"pet": {"kind": "bird"}}).pet
    assert bird.u is None  # a value without a branch has no further members
    dog = test_model.structure_args(
        "adopt", {"pet": {"kind": "dog", "name": "rex", "friend": {"kind": "bird"}}}
    ).pet
    assert dog.u == py.DogOptions(name="rex", friend=py.Pet(kind=animal.bird))
    assert (
        test_model.structure_args(
            "adopt", {"pet": {"kind": "dog", "name": "rex", "friend": "tom"}}
        ).pet.u.friend
        == "tom"
    )


def test_union_branch_whose_condition_fails(test_model: Model) -> None:
    """'fish' is a value of Animal but its branch needs CONFIG_FISH: no members.

    (QEMU's generated code would abort() here; the model treats it as a branch
    without members.)
    """
    pet = test_model.structure_args("adopt", {"pet": {"kind": "fish"}}).pet
    assert pet.u is None
    assert outcome(test_model, "adopt", {"pet": {"kind": "fish", "water": "salt"}}) == (
        "Parameter 'pet.water' is unexpected"
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "Parameter 'wheels' is missing"),
        ({"type": "car"}, "Parameter 'wheels' is missing"),
        ({"wheels": 4}, "Parameter 'type' is missing"),
        ({"wheels": 4, "type": "car"}, "Parameter 'seats' is missing"),
        ({"wheels": 2, "type": "bike", "seats": 1}, "Parameter 'seats' is unexpected"),
        ({"wheels": 4, "type": "car", "seats": 2**31}, "Parameter 'seats' expects int32_t"),
        ({"id": 1, "wheels": "x"}, type_error("id", "string")),
    ],
)
def test_boxed_errors(test_model: Model, arguments: dict[str, Any], expected: str) -> None:
    assert outcome(test_model, "add-vehicle", arguments) == expected


def test_boxed(test_model: Model) -> None:
    py = test_model.py
    info = test_model.commands["add-vehicle"]
    assert info.boxed
    assert info.arg_type is py.Vehicle
    args = test_model.structure_args("add-vehicle", {"wheels": 4, "type": "car", "seats": 5})
    assert args == py.Vehicle(wheels=4, type="car", u=py.CarOptions(seats=5))
    assert args.id is None


@pytest.mark.parametrize(
    ("member", "value", "expected"),
    [
        ("ref", "rex", "rex"),
        ("ref", 5, "Invalid parameter type for 'ref', expected: PetRef"),
        ("ref", None, "Invalid parameter type for 'ref', expected: PetRef"),
        ("ref", [], "Invalid parameter type for 'ref', expected: PetRef"),
        ("ref", {"kind": "cat"}, "Parameter 'ref.lives' is missing"),
        ("ref", {"kind": "cat", "lives": 1, "x": 0}, "Parameter 'ref.x' is unexpected"),
        ("ref-or-null", None, None),
        ("ref-or-null", "x", "x"),
        ("ref-or-null", True, "Invalid parameter type for 'ref-or-null', expected: PetRefOrNull"),
        ("num", 1, 1.0),
        ("num", 2.5, 2.5),
        ("num", True, True),
        ("num", "x", "Invalid parameter type for 'num', expected: NumOrFlag"),
        ("small", 5, 5),
        ("small", 300, "Parameter 'small' expects uint8_t"),
        ("small", -1, "Parameter 'small' expects uint8_t"),
        ("small", 1.5, "Parameter 'small' expects uint64"),
        ("small", "blue", "Parameter 'small' does not accept value 'blue'"),
        ("small", None, "Invalid parameter type for 'small', expected: SmallOrColour"),
        ("sizes", -1, U64 - 1),
        ("sizes", [1, -2], [1, -2]),
        ("sizes", [1, "x"], type_error("sizes[1]", "integer")),
        ("sizes", 0.5, "Parameter 'sizes' expects uint64"),
        ("sizes", {}, "Invalid parameter type for 'sizes', expected: SizeOrInts"),
        ("refs", ["a", 5], "Invalid parameter type for 'null', expected: PetRef"),
        ("refs", ["a", {"kind": "dog"}], "Parameter 'refs[1].name' is missing"),
        ("refs", ["a", "b"], ["a", "b"]),
    ],
)
def test_alternates(test_model: Model, member: str, value: Any, expected: Any) -> None:
    got = member_outcome(test_model, "alternates", member, value)
    assert got == expected
    assert type(got) is type(expected)


def test_alternate_object_and_enum_branches(test_model: Model) -> None:
    py = test_model.py
    args = test_model.structure_args("alternates", {"ref": {"kind": "bird"}, "small": "green-ish"})
    assert args.ref == py.Pet(kind="bird")
    assert args.small is test_model.enum("Colour").green_ish


def test_nullable_optional_uses_absent(test_model: Model) -> None:
    absent = test_model.structure_args("alternates", {})
    assert absent.ref_or_null is ABSENT
    assert absent.ref is None
    present = test_model.structure_args("alternates", {"ref-or-null": None})
    assert present.ref_or_null is None
    fields = attrs.fields_dict(test_model.py.AlternatesArgs)
    assert fields["ref_or_null"].metadata["absent"] is ABSENT
    assert fields["ref"].metadata["absent"] is None
    # the same for null and any members
    scalars = test_model.structure_args("scalars", {})
    assert scalars.z is ABSENT
    assert scalars.a is ABSENT
    assert scalars.s is None
    assert test_model.structure_args("scalars", {"z": None, "a": None}).z is None


def test_no_arguments(test_model: Model) -> None:
    assert test_model.commands["ping"].arg_type is None
    assert test_model.structure_args("ping", None) is None
    assert test_model.structure_args("ping", {}) is None
    assert outcome(test_model, "ping", {"a": 1}) == "Parameter 'a' is unexpected"


def test_conditional_command(test_model: Model, plain_model: Model) -> None:
    assert "only-ir" in test_model.commands
    assert "only-ir" not in plain_model.commands


def test_command_flags(test_model: Model) -> None:
    info = test_model.commands["fire-and-forget"]
    assert info.allow_oob
    assert not info.success_response
    assert test_model.commands["ping"].success_response


def test_top_level_values_are_anonymous(test_model: Model) -> None:
    with pytest.raises(ArgumentError, match=r"^Invalid parameter type for '<anonymous>', "):
        test_model.structure("Point", 5)
    with pytest.raises(ArgumentError, match=r"^Parameter 'y' is missing$"):
        test_model.structure("Point", {"x": 1})
    with pytest.raises(ArgumentError, match=r"^Parameter 'null' does not accept value 'x'$"):
        test_model.structure("Colour", "x")
    assert test_model.structure("PetRef", "x") == "x"
    assert test_model.structure("int8", 5) == 5


def test_cattrs_converter(test_model: Model) -> None:
    py = test_model.py
    conv = test_model.converter
    assert conv.structure({"x": 1, "y": 2}, py.Point) == py.Point(x=1, y=2)
    assert conv.structure("red", test_model.enum("Colour")) == "red"
    with pytest.raises(ArgumentError, match=r"^Parameter 'z' is unexpected$"):
        conv.structure({"x": 1, "y": 2, "z": 3}, py.Point)
    pet = py.Pet(kind="dog", u=py.DogOptions(name="rex", tricks=["sit"]))
    assert conv.unstructure(pet) == {"kind": "dog", "name": "rex", "tricks": ["sit"]}
    assert conv.unstructure(test_model.enum("Colour").red) == "red"
    assert type(conv.unstructure(test_model.enum("Colour").red)) is str


def test_mapping_arguments(test_model: Model) -> None:
    from types import MappingProxyType

    args = test_model.structure_args("ordered", MappingProxyType({"first": "a", "third": True}))
    assert args.first == "a"

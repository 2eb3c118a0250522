"""Runtime Python types built from a checked QAPI schema.

:class:`TypeBuilder` walks the schema's types and produces one *node* per QAPI type
(the model's own compact description, see :data:`Node`) plus the Python types handlers
use:

==================  ========================================================
QAPI                Python
==================  ========================================================
struct              a frozen, slotted ``attrs`` class (subclass of
                    :class:`QAPIStruct`), keyword-only ``__init__``, fields in
                    member order (base members first)
implicit arguments  the same, named ``<Command>Args`` (``JobPauseArgs``),
                    events ``<Event>Data``
union               an attrs class with the base members (the discriminator
                    included, as an enum member) plus ``u``: the branch
                    struct's instance, or None for a branch without members
enum                an ``enum.StrEnum`` subclass of :class:`QAPIEnum`; members
                    compare equal to their wire strings
alternate           no class: the value is the branch's value itself
array               ``list``
str, int*, uint*,   ``str``, ``int`` (uint64 values are in 0..2**64-1),
size, number, bool  ``float``, ``bool``
null, any           ``None``, the JSON value as decoded
==================  ========================================================

Classes are frozen so that arguments cannot be changed behind a handler's back and
values can be shared between replies and events; use ``attrs.evolve`` to derive a
changed copy.

**Absent optional members.**  An optional member that was not given holds ``None``,
unless its type can itself carry JSON ``null`` (``null``, ``any``, or an alternate with
a ``null`` branch): then ``None`` means "present and null" and absence is the
:data:`ABSENT` sentinel.  Each field's default is its absent value, and absent members
are left out when unstructuring.  ``attrs.fields(C).x.metadata`` holds ``"qapi"`` (the
wire name), ``"optional"`` and ``"absent"``.

Only entities whose ``if`` condition holds for the given set of defined symbols are
built; members, enum values and branches whose condition fails do not exist.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Iterable
from typing import Any, Final

import attrs

from qjobd.qapi.schema import (
    JSON_TO_QTYPE,
    AlternateType,
    ArrayType,
    BuiltinType,
    Entity,
    EnumType,
    Member,
    ObjectType,
    SchemaMember,
    Type,
)

from .errors import ModelError
from .naming import class_name, enum_member_name, member_name

__all__ = [
    "ABSENT",
    "Absent",
    "AlternateNode",
    "ArrayNode",
    "BuiltinNode",
    "EnumNode",
    "MemberNode",
    "Node",
    "ObjectNode",
    "QAPIEnum",
    "QAPIStruct",
    "TypeBuilder",
]


class Absent:
    """Type of :data:`ABSENT`, the value of an absent optional nullable member."""

    _instance: Absent | None = None

    def __new__(cls) -> Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Final = Absent()


class QAPIStruct:
    """Base of every generated attrs class (QAPI structs, unions, argument sets)."""

    __slots__ = ()
    #: The QAPI name of the type (``q_obj_job-pause-arg`` for implicit ones).
    __qapi_name__: typing.ClassVar[str] = ""


class QAPIEnum(enum.StrEnum):
    """Base of every generated enum; members are their wire strings."""


# Builtin name -> (json type, Python annotation text).
_BUILTINS: Final[dict[str, tuple[str, str]]] = {
    "str": ("string", "str"),
    "number": ("number", "float"),
    "int": ("int", "int"),
    "int8": ("int", "int"),
    "int16": ("int", "int"),
    "int32": ("int", "int"),
    "int64": ("int", "int"),
    "uint8": ("int", "int"),
    "uint16": ("int", "int"),
    "uint32": ("int", "int"),
    "uint64": ("int", "int"),
    "size": ("int", "int"),
    "bool": ("boolean", "bool"),
    "null": ("null", "None"),
    "any": ("value", "Any"),
}



@attrs.define(eq=False)
class BuiltinNode:
    name: str
    json_type: str

    @property
    def annotation(self) -> str:
        return _BUILTINS[self.name][1]


@attrs.define(eq=False)
class EnumNode:
    name: str
    py_type: type[QAPIEnum]
    #: Wire values in schema order (conditional values left out when false).
    values: tuple[str, ...]
    json_type: str = "string"


@attrs.define(eq=False)
class ArrayNode:
    name: str
    element: Node
    json_type: str = "array"


@attrs.define(eq=False)
class MemberNode:
    #: Wire (QAPI) name.
    name: str
    #: Python attribute name.
    attr: str
    type: Node
    optional: bool
    #: What the attribute holds when the member is absent (None or ABSENT).
    absent: Any


@attrs.define(eq=False)
class ObjectNode:
    name: str
    py_name: str
    #: Members in visiting order: base members first, then local ones.
    members: list[MemberNode] = attrs.Factory(list)
    #: The discriminator of a union (one of ``members``).
    tag: MemberNode | None = None
    #: Union branches by discriminator value; None for a branch without members.
    branches: dict[str, ObjectNode | None] = attrs.Factory(dict)
    py_type: type[QAPIStruct] = QAPIStruct
    json_type: str = "object"

    @property
    def is_union(self) -> bool:
        return self.tag is not None


@attrs.define(eq=False)
class AlternateNode:
    name: str
    #: ``(qtype, node)`` per live branch, in schema order; qtype is one of
    #: qnull, qstring, qnum, qbool, qlist, qdict.
    branches: list[tuple[str, Node]] = attrs.Factory(list)
    json_type: str = "value"


Node = BuiltinNode | EnumNode | ArrayNode | ObjectNode | AlternateNode


class TypeBuilder:
    """Build nodes and Python types for the types of one schema.

    :param defined: the configuration symbols for which ``if`` conditions hold.
    """

    def __init__(self, defined: Iterable[str] = ()) -> None:
        self.defined: frozenset[str] = frozenset(defined)
        self.nodes: dict[str, Node] = {}
        #: Python names chosen for implicit types before they are built.
        self._name_hints: dict[str, str] = {}
        self._objects: list[ObjectNode] = []

    def live(self, entity: Entity | SchemaMember) -> bool:
        """Does ``entity``'s ``if`` condition hold?"""
        return entity.ifcond.evaluate(self.defined)

    def hint_name(self, qapi_name: str, py_name: str) -> None:
        """Use ``py_name`` as the class name of (implicit) type ``qapi_name``."""
        self._name_hints.setdefault(qapi_name, py_name)

    def node(self, qtype: Type) -> Node:
        """The node of schema type ``qtype`` (built on first use)."""
        name = qtype.name
        found = self.nodes.get(name)
        if found is not None:
            return found
        node: Node
        if isinstance(qtype, ArrayType):
            node = ArrayNode(name, BuiltinNode("any", "value"))
            self.nodes[name] = node
            node.element = self.node(qtype.element_type)
        elif isinstance(qtype, ObjectType):
            node = ObjectNode(name, self._name_hints.get(name) or class_name(name))
            self.nodes[name] = node
            self._fill_object(node, qtype)
        elif isinstance(qtype, AlternateType):
            node = AlternateNode(name)
            self.nodes[name] = node
            self._fill_alternate(node, qtype)
        elif isinstance(qtype, EnumType):
            values = [m.name for m in qtype.members if self.live(m)]
            node = self._make_enum(name, values)
        elif name in _BUILTINS:
            node = BuiltinNode(name, _BUILTINS[name][0])
        else:
            raise ModelError(f"unknown builtin type {name!r}")
        self.nodes[name] = node
        return node

    def _make_enum(self, name: str, values: list[str]) -> EnumNode:
        py_name = class_name(name)
        members = [(enum_member_name(v), v) for v in values]
        seen: dict[str, str] = {}
        for py, wire in members:
            if py in seen:
                raise ModelError(f"enum {name}: values {seen[py]!r} and {wire!r} clash as {py!r}")
            seen[py] = wire
        # The functional Enum API, which the type checker does not model.
        make: Any = QAPIEnum
        py_type: type[QAPIEnum] = make(py_name, members, module=__name__)
        py_type.__qapi_name__ = name  # type: ignore[attr-defined]
        return EnumNode(name, py_type, tuple(values))

    def _member(self, member: Member) -> MemberNode:
        mtype = self.node(member.type)
        optional = bool(member.optional)
        absent = ABSENT if optional and self._nullable(member.type) else None
        return MemberNode(member.name, member_name(member.name), mtype, optional, absent)

    def _nullable(self, qtype: Type) -> bool:
        """Can a value of this type be JSON null (null, any, alternate with null)?"""
        if isinstance(qtype, BuiltinType):
            return qtype.name in ("null", "any")
        if isinstance(qtype, AlternateType):
            return any(
                v.type.json_type() == "null" for v in qtype.variants.variants if self.live(v)
            )
        return False

    def _fill_object(self, node: ObjectNode, qtype: ObjectType) -> None:
        members = [self._member(m) for m in qtype.members if self.live(m)]
        node.members = members
        variants = qtype.variants
        if variants is not None:
            tag_name = variants.tag_member.name
            tag = next((m for m in members if m.name == tag_name), None)
            if tag is None or not isinstance(tag.type, EnumNode):
                raise ModelError(f"union {node.name}: bad discriminator {tag_name!r}")
            node.tag = tag
            for variant in variants.variants:
                if not self.live(variant) or variant.name not in tag.type.values:
                    continue
                if variant.type.name == "q_empty":
                    node.branches[variant.name] = None
                    continue
                branch = self.node(variant.type)
                if not isinstance(branch, ObjectNode):
                    raise ModelError(f"union {node.name}: branch {variant.name!r} not a struct")
                node.branches[variant.name] = branch
            for value in tag.type.values:
                node.branches.setdefault(value, None)
        self._objects.append(node)
        node.py_type = self._make_class(node)

    def _fill_alternate(self, node: AlternateNode, qtype: AlternateType) -> None:
        for variant in qtype.variants.variants:
            if not self.live(variant):
                continue
            branch = self.node(variant.type)
            qt = JSON_TO_QTYPE.get(branch.json_type)
            if qt is None:
                raise ModelError(f"alternate {node.name}: branch {variant.name!r} has no QType")
            node.branches.append((qt, branch))

    def _make_class(self, node: ObjectNode) -> type[QAPIStruct]:
        fields: dict[str, Any] = {}
        for m in node.members:
            if m.attr in fields:
                raise ModelError(f"{node.name}: members clash as Python attribute {m.attr!r}")
            metadata = {"qapi": m.name, "optional": m.optional, "absent": m.absent}
            if m.optional:
                fields[m.attr] = attrs.field(kw_only=True, default=m.absent, metadata=metadata)
            else:
                fields[m.attr] = attrs.field(kw_only=True, metadata=metadata)
        if node.is_union:
            if "u" in fields:
                raise ModelError(f"union {node.name}: member 'u' clashes with the branch field")
            fields["u"] = attrs.field(kw_only=True, default=None, metadata={"qapi": None})
        cls: type[QAPIStruct] = attrs.make_class(
            node.py_name, fields, bases=(QAPIStruct,), slots=True, frozen=True, weakref_slot=False
        )
        cls.__qapi_name__ = node.name
        cls.__module__ = __name__
        return cls

    def finish(self) -> None:
        """Give every generated attrs field its Python type annotation.

        Done once all types exist, because QAPI types may refer to each other in
        cycles.
        """
        namespace: dict[str, Any] = {"Any": Any, "Absent": Absent, "typing": typing}
        names: dict[str, str] = {}
        for i, node in enumerate(self.nodes.values()):
            if isinstance(node, ObjectNode | EnumNode):
                names[node.name] = f"_T{i}"
                namespace[f"_T{i}"] = node.py_type

        def text(n: Node) -> str:
            if isinstance(n, BuiltinNode):
                return n.annotation
            if isinstance(n, ArrayNode):
                return f"list[{text(n.element)}]"
            if isinstance(n, AlternateNode):
                return " | ".join(dict.fromkeys(text(b) for _, b in n.branches)) or "Any"
            return names[n.name]

        for node in self._objects:
            cls = node.py_type
            for m in node.members:
                ann = text(m.type)
                if m.optional and ann != "Any":
                    ann += " | Absent" if m.absent is ABSENT else " | None"
                cls.__annotations__[m.attr] = ann
            if node.is_union:
                branch_types = {names[b.name] for b in node.branches.values() if b is not None}
                cls.__annotations__["u"] = " | ".join([*sorted(branch_types), "None"])
            attrs.resolve_types(typing.cast(Any, cls), globalns=namespace)
        self._objects.clear()

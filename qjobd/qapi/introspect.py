"""``query-qmp-schema`` data, in the shape QEMU's SchemaInfo defines.

The result is a list of SchemaInfo objects (plain dicts, ready for JSON):

* commands and events first, in definition order, then exactly the types
  they use, directly or indirectly, in order of first use;
* type names other than built-ins are replaced by opaque numbers ("0",
  "1", ...) in order of first use, so clients look at commands and events
  rather than at type names (:class:`IntrospectionVisitor` can keep the real
  names for debugging);
* all integer types are reported as ``int`` (arrays of them as ``[int]``);
* a command without arguments or return value refers to the empty object
  ``q_empty``; optional object members carry ``"default": null``; enums
  list their values both as ``members`` and as the older ``values``.

QEMU decides at build time which conditional parts exist.  Here the
configuration symbols are passed in as *defined*; anything whose ``if``
condition is false is left out.  Type numbers are assigned before that
filtering, as QEMU's generator does, so the numbers match a real QEMU built
with the same configuration.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from .expr import IfCond
from .schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    Command,
    Entity,
    EnumMember,
    EnumType,
    Event,
    Feature,
    Member,
    ObjectType,
    Schema,
    Type,
    Variant,
    Visitor,
)
from .source import SourceInfo

__all__ = ["JSON", "IntrospectionVisitor", "SchemaInfo", "introspect"]

#: A JSON value.
JSON = bool | str | None | list[Any] | dict[str, Any]
#: One entry of the ``query-qmp-schema`` result.
SchemaInfo = dict[str, JSON]


class _Cond:
    """A value that exists only when *ifcond* holds."""

    __slots__ = ("ifcond", "value")

    def __init__(self, value: object, ifcond: IfCond) -> None:
        self.value = value
        self.ifcond = ifcond


_DROP = object()


class IntrospectionVisitor(Visitor):
    """Build the ``query-qmp-schema`` result while visiting a schema.

    :param defined: configuration symbols considered defined when evaluating
        ``if`` conditions.
    :param unmask: keep real type names instead of numbers.

    After :meth:`Schema.visit`, the list is in :attr:`result`.
    """

    def __init__(self, defined: Set[str] = frozenset(), unmask: bool = False) -> None:
        self._defined = defined
        self._unmask = unmask
        self._schema: Schema | None = None
        self._trees: list[_Cond] = []
        self._used_types: list[Type] = []
        self._used_ids: set[int] = set()
        self._name_map: dict[str, str] = {}
        self.result: list[SchemaInfo] = []

    # Section: visitor protocol

    def visit_begin(self, schema: Schema) -> None:
        self._schema = schema
        self._trees = []
        self._used_types = []
        self._used_ids = set()
        self._name_map = {}

    def visit_needed(self, entity: Entity) -> bool:
        # Types are emitted at the end, and only when used.
        return not isinstance(entity, Type)

    def visit_end(self) -> None:
        # The list grows while we walk it: types use more types.
        i = 0
        while i < len(self._used_types):
            self._used_types[i].visit(self)
            i += 1
        result: list[SchemaInfo] = []
        for tree in self._trees:
            info = self._strip(tree)
            if info is not _DROP:
                assert isinstance(info, dict)
                result.append(info)
        self.result = result
        self._schema = None

    def visit_command(self, command: Command) -> None:
        schema = self._need_schema()
        arg_type = command.arg_type or schema.the_empty_object_type
        ret_type = command.ret_type or schema.the_empty_object_type
        obj: dict[str, object] = {
            "arg-type": self._use_type(arg_type),
            "ret-type": self._use_type(ret_type),
        }
        if command.allow_oob:
            obj["allow-oob"] = True
        self._add(command.name, "command", obj, command.ifcond, command.features)

    def visit_event(self, event: Event) -> None:
        schema = self._need_schema()
        arg_type = event.arg_type or schema.the_empty_object_type
        obj: dict[str, object] = {"arg-type": self._use_type(arg_type)}
        self._add(event.name, "event", obj, event.ifcond, event.features)

    def visit_builtin_type(self, name: str, info: SourceInfo | None, json_type: str) -> None:
        self._add(name, "builtin", {"json-type": json_type})

    def visit_enum_type(self, typ: EnumType) -> None:
        obj: dict[str, object] = {
            "members": [self._enum_member(m) for m in typ.members],
            "values": [_Cond(m.name, m.ifcond) for m in typ.members],
        }
        self._add(typ.name, "enum", obj, typ.ifcond, typ.features)

    def visit_array_type(self, typ: ArrayType) -> None:
        element = self._use_type(typ.element_type)
        self._add(f"[{element}]", "array", {"element-type": element}, typ.ifcond)

    def visit_object_type(self, typ: ObjectType) -> None:
        obj: dict[str, object] = {"members": [self._object_member(m) for m in typ.members]}
        if typ.variants is not None:
            obj["tag"] = typ.variants.tag_member.name
            obj["variants"] = [self._variant(v) for v in typ.variants.variants]
        self._add(typ.name, "object", obj, typ.ifcond, typ.features)

    def visit_alternate_type(self, typ: AlternateType) -> None:
        members = [_Cond({"type": self._use_type(v.type)}, v.ifcond) for v in typ.variants.variants]
        self._add(typ.name, "alternate", {"members": members}, typ.ifcond, typ.features)

    # Section: helpers

    def _need_schema(self) -> Schema:
        assert self._schema is not None, "visit_begin() not called"
        return self._schema

    def _name(self, name: str) -> str:
        if self._unmask:
            return name
        number = self._name_map.get(name)
        if number is None:
            number = self._name_map[name] = str(len(self._name_map))
        return number

    def _use_type(self, typ: Type) -> str:
        """Note that *typ* is used and return how SchemaInfo refers to it."""
        schema = self._need_schema()
        replacement: Type | None = None
        if typ.json_type() == "int":
            replacement = schema.lookup_type("int")
        elif isinstance(typ, ArrayType) and typ.element_type.json_type() == "int":
            replacement = schema.lookup_type("intList")
        if replacement is not None:
            typ = replacement
        if id(typ) not in self._used_ids:
            self._used_ids.add(id(typ))
            self._used_types.append(typ)
        if isinstance(typ, BuiltinType):
            return typ.name
        if isinstance(typ, ArrayType):
            return f"[{self._use_type(typ.element_type)}]"
        return self._name(typ.name)

    @staticmethod
    def _features(features: list[Feature]) -> list[_Cond]:
        return [_Cond(f.name, f.ifcond) for f in features]

    def _enum_member(self, member: EnumMember) -> _Cond:
        obj: dict[str, object] = {"name": member.name}
        if member.features:
            obj["features"] = self._features(member.features)
        return _Cond(obj, member.ifcond)

    def _object_member(self, member: Member) -> _Cond:
        obj: dict[str, object] = {"name": member.name, "type": self._use_type(member.type)}
        if member.optional:
            obj["default"] = None
        if member.features:
            obj["features"] = self._features(member.features)
        return _Cond(obj, member.ifcond)

    def _variant(self, variant: Variant) -> _Cond:
        obj = {"case": variant.name, "type": self._use_type(variant.type)}
        return _Cond(obj, variant.ifcond)

    def _add(
        self,
        name: str,
        meta_type: str,
        obj: dict[str, object],
        ifcond: IfCond | None = None,
        features: list[Feature] | None = None,
    ) -> None:
        if meta_type not in ("command", "event", "builtin", "array"):
            name = self._name(name)
        tree: dict[str, object] = {"name": name, "meta-type": meta_type, **obj}
        if features:
            tree["features"] = self._features(features)
        self._trees.append(_Cond(tree, ifcond or IfCond()))

    def _strip(self, value: object) -> object:
        """Resolve conditions: drop what is absent, unwrap the rest."""
        if isinstance(value, _Cond):
            if not value.ifcond.evaluate(self._defined):
                return _DROP
            value = value.value
        if isinstance(value, list):
            items = (self._strip(v) for v in value)
            return [v for v in items if v is not _DROP]
        if isinstance(value, dict):
            return {k: self._strip(v) for k, v in value.items()}
        return value


def introspect(
    schema: Schema, defined: Set[str] = frozenset(), unmask: bool = False
) -> list[SchemaInfo]:
    """The ``query-qmp-schema`` result for *schema* built with *defined*."""
    visitor = IntrospectionVisitor(defined, unmask)
    schema.visit(visitor)
    return visitor.result

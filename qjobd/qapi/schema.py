"""The checked semantic model of a QAPI schema.

:class:`Schema` reads a schema file (with everything it includes), checks
it, and offers the result as a graph of *entities*: types (built-in, enum,
array, object, alternate), commands and events, with type references
resolved to the type objects.  Consumers either look entities up by name or
walk them with a :class:`Visitor`.

The rules enforced here are those that need more than one expression:
references to unknown types, duplicate definitions, members that clash with
base or branch members (including names that differ only in ``-`` vs.
``_``), unions whose discriminator or branches don't fit, alternates whose
branches a JSON value could not tell apart, what commands may take and
return, and that doc comments describe only members that exist.

The model mirrors QEMU's own (so that introspection output matches what a
real QEMU reports) but is an independent implementation.

Order
    "Definition order", used by :meth:`Schema.visit` and
    :meth:`Schema.entities`, is QEMU's module order: built-in types first,
    then each schema file's definitions in source order, files taken in the
    order they were first included.  Implicit types (arrays, ``q_obj_*``
    argument types) sit in the file of their element type or user.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from .error import QAPIError, QAPISemError
from .expr import (
    AlternateDef,
    BranchDef,
    CommandDef,
    Definition,
    EnumDef,
    EnumValueDef,
    EventDef,
    FeatureDef,
    IfCond,
    IncludeDef,
    MemberDef,
    StructDef,
    TypeRef,
    UnionDef,
    c_name,
    check_exprs,
)
from .parser import DocBlock, SchemaParser
from .source import Pragma, SourceInfo

__all__ = [
    "AlternateType",
    "ArrayType",
    "BuiltinType",
    "Command",
    "Entity",
    "EnumMember",
    "EnumType",
    "Event",
    "Feature",
    "IfCond",
    "Include",
    "Member",
    "Module",
    "ObjectType",
    "Schema",
    "SchemaMember",
    "Type",
    "Variant",
    "Variants",
    "Visitor",
]

BUILTIN_MODULE = "./builtin"

#: Built-in types and their JSON types, in QEMU's order.
BUILTIN_TYPES: tuple[tuple[str, str], ...] = (
    ("str", "string"),
    ("number", "number"),
    ("int", "int"),
    ("int8", "int"),
    ("int16", "int"),
    ("int32", "int"),
    ("int64", "int"),
    ("uint8", "int"),
    ("uint16", "int"),
    ("uint32", "int"),
    ("uint64", "int"),
    ("size", "int"),
    ("bool", "boolean"),
    ("any", "value"),
    ("null", "null"),
)

_QTYPE_VALUES = ("none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool")

# What a JSON value of each kind looks like to an alternate (QEMU's QType).
JSON_TO_QTYPE = {
    "null": "qnull",
    "string": "qstring",
    "number": "qnum",
    "int": "qnum",
    "boolean": "qbool",
    "array": "qlist",
    "object": "qdict",
}
_QTYPE_WORDS = {
    "qnull": "null",
    "qstring": "string",
    "qnum": "number",
    "qbool": "boolean",
    "qlist": "array",
    "qdict": "object",
}


# Section: members


class SchemaMember:
    """Common base of object members, branches, enum values and features.

    :ivar defined_in: name of the entity that defines it (set on creation of
        that entity).
    """

    role = "member"

    def __init__(self, name: str, info: SourceInfo | None, ifcond: IfCond | None = None) -> None:
        self.name = name
        self.info = info
        self.ifcond = ifcond or IfCond()
        self.defined_in: str | None = None

    def set_defined_in(self, name: str) -> None:
        assert self.defined_in is None
        self.defined_in = name

    def check_clash(self, info: SourceInfo | None, seen: dict[str, SchemaMember]) -> None:
        """Reject a name that maps to the same C name as one in *seen*."""
        cname = c_name(self.name)
        other = seen.get(cname)
        if other is not None:
            hint = "rename one of them"
            if other.name != self.name:
                hint += " (names that differ only in '-' vs. '_' or '.' clash)"
            raise QAPISemError(
                _need_info(info),
                f"{self.describe(info)} clashes with {other.describe(info)}; {hint}",
            )
        seen[cname] = self

    def connect_doc(self, doc: DocBlock | None) -> None:
        if doc is not None:
            doc.connect_member(self)

    def describe(self, info: SourceInfo | None) -> str:
        """Describe the member for a message issued while checking *info*'s
        definition (naming the defining type when it's another one)."""
        role = self.role
        defined_in = self.defined_in
        assert defined_in is not None
        if defined_in.startswith("q_obj_"):
            # Implicit types: say what they stand for.
            defined_in = defined_in[len("q_obj_") :]
            if defined_in.endswith("-arg"):
                role = "parameter"
            elif defined_in.endswith("-base"):
                role = "base " + role
        elif info is None or defined_in != info.defn_name:
            return f"{role} '{self.name}' of type '{defined_in}'"
        return f"{role} '{self.name}'"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class Feature(SchemaMember):
    """A feature flag of a definition, member or enum value."""

    role = "feature"

    def is_special(self) -> bool:
        """Features with meaning to QEMU itself (and to QMP clients)."""
        return self.name in ("deprecated", "unstable")


class EnumMember(SchemaMember):
    """A value of an enum type."""

    role = "value"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        ifcond: IfCond | None = None,
        features: list[Feature] | None = None,
    ) -> None:
        super().__init__(name, info, ifcond)
        self.features = features or []
        for feat in self.features:
            feat.set_defined_in(name)

    def connect_doc(self, doc: DocBlock | None) -> None:
        super().connect_doc(doc)
        if doc is not None:
            for feat in self.features:
                doc.connect_feature(feat)


class Member(SchemaMember):
    """A member of an object type (or, as :class:`Variant`, a branch)."""

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        type_name: str,
        optional: bool,
        ifcond: IfCond | None = None,
        features: list[Feature] | None = None,
    ) -> None:
        super().__init__(name, info, ifcond)
        self.type_name = type_name
        self._type: Type | None = None
        self.optional = optional
        self.features = features or []
        for feat in self.features:
            feat.set_defined_in(name)

    @property
    def type(self) -> Type:
        """The member's type (resolved when the schema is checked)."""
        assert self._type is not None, "schema not checked yet"
        return self._type

    def check(self, schema: Schema) -> None:
        assert self.defined_in is not None
        self._type = schema.resolve_type(self.type_name, self.info, self.describe)
        seen: dict[str, SchemaMember] = {}
        for feat in self.features:
            feat.check_clash(self.info, seen)

    def connect_doc(self, doc: DocBlock | None) -> None:
        super().connect_doc(doc)
        if doc is not None:
            for feat in self.features:
                doc.connect_feature(feat)


class Variant(Member):
    """A branch of a union (its ``type`` is an object type) or an
    alternate (any type); ``name`` is the enum value or branch name."""

    role = "branch"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        type_name: str,
        ifcond: IfCond | None = None,
    ) -> None:
        super().__init__(name, info, type_name, False, ifcond)


class Variants:
    """The branches of a union or alternate.

    For a union, ``tag_member`` is the discriminator (a member of the base);
    for an alternate it is an implicit member ``type`` of enum type ``QType``.
    After checking, a union has a branch for every value of the tag's enum:
    values without an explicit branch get one with the empty type
    ``q_empty``.
    """

    def __init__(
        self,
        tag_name: str | None,
        info: SourceInfo,
        tag_member: Member | None,
        variants: list[Variant],
    ) -> None:
        assert (tag_name is None) != (tag_member is None)
        self._tag_name = tag_name
        self.info = info
        self._tag_member = tag_member
        self.variants = variants

    @property
    def tag_member(self) -> Member:
        assert self._tag_member is not None, "schema not checked yet"
        return self._tag_member

    def set_defined_in(self, name: str) -> None:
        for v in self.variants:
            v.set_defined_in(name)

    def check(self, schema: Schema, seen: dict[str, SchemaMember]) -> None:
        """Check the branches; *seen* holds the union's members (empty for
        alternates)."""
        info = self.info
        if self._tag_name is not None:
            self._check_union_tag(schema, seen)
            tag_type = self.tag_member.type
            assert isinstance(tag_type, EnumType)
            covered = {v.name for v in self.variants}
            for value in tag_type.members:
                if value.name not in covered:
                    implicit = Variant(value.name, info, "q_empty", value.ifcond)
                    implicit.set_defined_in(_need(self.tag_member.defined_in))
                    self.variants.append(implicit)
        if not self.variants:
            raise QAPISemError(info, "union has no branches (its discriminator enum has no values)")
        for v in self.variants:
            v.check(schema)
            if self._tag_name is None:
                continue  # alternates are checked by AlternateType
            tag_type = self.tag_member.type
            assert isinstance(tag_type, EnumType)
            if v.name not in tag_type.member_names():
                raise QAPISemError(
                    info,
                    f"branch '{v.name}' is not a value of {tag_type.describe()}; "
                    f"branch names must be values of the discriminator's enum",
                )
            if not isinstance(v.type, ObjectType) or v.type.variants is not None:
                raise QAPISemError(
                    info,
                    f"{v.describe(info)} cannot use {v.type.describe()}; "
                    f"union branches must be struct types",
                )
            v.type.check(schema)

    def _check_union_tag(self, schema: Schema, seen: dict[str, SchemaMember]) -> None:
        tag_name = _need(self._tag_name)
        found = seen.get(c_name(tag_name))
        base = "'base'"
        if not isinstance(found, Member) or found.name != tag_name:
            raise QAPISemError(
                self.info,
                f"discriminator '{tag_name}' is not a member of {base}; "
                f"the discriminator must name a member of the union's base",
            )
        self._tag_member = found
        base_type = schema.lookup_type(_need(found.defined_in))
        assert base_type is not None
        if not base_type.is_implicit():
            base = f"base type '{found.defined_in}'"
        if not isinstance(found.type, EnumType):
            raise QAPISemError(
                self.info, f"discriminator member '{tag_name}' of {base} must be of enum type"
            )
        if found.optional:
            raise QAPISemError(
                self.info, f"discriminator member '{tag_name}' of {base} must not be optional"
            )
        if found.ifcond.is_present():
            raise QAPISemError(
                self.info,
                f"discriminator member '{tag_name}' of {base} must not be conditional",
            )

    def check_clash(self, info: SourceInfo | None, seen: dict[str, SchemaMember]) -> None:
        """Each branch's members must not clash with the union's members."""
        for v in self.variants:
            assert isinstance(v.type, ObjectType)
            v.type.check_clash(info, dict(seen))


# Section: entities


class Entity:
    """Something defined in (or implied by) the schema.

    :ivar name: the entity's name.
    :ivar info: where it is defined; ``None`` for built-ins.  Implicit
        types point at the definition that caused them.
    :ivar doc: the doc comment, if any.
    :ivar features: feature flags.
    :ivar module: name of the schema file (relative to the main file's
        directory) it belongs to, ``'./builtin'`` for built-ins.
    :cvar meta: kind of entity: ``'built-in'``, ``'enum'``, ``'array'``,
        ``'struct'``, ``'union'`` (object types), ``'alternate'``,
        ``'command'``, ``'event'``.
    """

    meta: str = ""

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        doc: DocBlock | None = None,
        ifcond: IfCond | None = None,
        features: list[Feature] | None = None,
    ) -> None:
        self.name = name
        self.info = info
        self.doc = doc
        self._ifcond = ifcond or IfCond()
        self.features = features or []
        for feat in self.features:
            feat.set_defined_in(name)
        self.module: str | None = None
        self._checked = False

    @property
    def ifcond(self) -> IfCond:
        """Condition under which the entity exists."""
        return self._ifcond

    def is_implicit(self) -> bool:
        """Not written in the schema but implied (built-ins, arrays, ...)."""
        return self.info is None

    def check(self, schema: Schema) -> None:
        assert not self._checked
        seen: dict[str, SchemaMember] = {}
        for feat in self.features:
            feat.check_clash(self.info, seen)
        self._checked = True

    def connect_doc(self, doc: DocBlock | None = None) -> None:
        doc = doc or self.doc
        if doc is not None:
            for feat in self.features:
                doc.connect_feature(feat)

    def check_doc(self) -> None:
        if self.doc is not None:
            self.doc.check()

    def visit(self, visitor: Visitor) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.meta} '{self.name}'"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class Type(Entity):
    """Base of all types."""

    def json_type(self) -> str:
        """The JSON type of values: ``'string'``, ``'number'``, ``'int'``,
        ``'boolean'``, ``'null'``, ``'object'``, ``'array'`` or ``'value'``
        (anything)."""
        raise NotImplementedError

    def alternate_qtype(self) -> str | None:
        """The kind of JSON value (QType name) an alternate sees for this
        type, or ``None`` if the type cannot be an alternate branch."""
        return JSON_TO_QTYPE.get(self.json_type())

    def check(self, schema: Schema) -> None:
        super().check(schema)
        for feat in self.features:
            if feat.is_special():
                raise QAPISemError(
                    _need_info(self.info),
                    f"feature '{feat.name}' is not supported for types; put it on "
                    f"the members, commands or events instead",
                )

    def describe(self) -> str:
        return f"{self.meta} type '{self.name}'"


class BuiltinType(Type):
    """One of ``str``, ``number``, ``int``, ``int8`` ... ``uint64``,
    ``size``, ``bool``, ``any``, ``null``."""

    meta = "built-in"

    def __init__(self, name: str, json_type: str) -> None:
        super().__init__(name, None)
        self._json_type = json_type

    def json_type(self) -> str:
        return self._json_type

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_builtin_type(self.name, self.info, self._json_type)


class EnumType(Type):
    """An enumeration; ``prefix`` is the C constant prefix, if overridden."""

    meta = "enum"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        doc: DocBlock | None,
        ifcond: IfCond | None,
        features: list[Feature] | None,
        members: list[EnumMember],
        prefix: str | None,
    ) -> None:
        super().__init__(name, info, doc, ifcond, features)
        self.members = members
        for m in members:
            m.set_defined_in(name)
        self.prefix = prefix

    def check(self, schema: Schema) -> None:
        super().check(schema)
        seen: dict[str, SchemaMember] = {}
        for m in self.members:
            m.check_clash(self.info, seen)

    def connect_doc(self, doc: DocBlock | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        for m in self.members:
            m.connect_doc(doc)

    def is_implicit(self) -> bool:
        return self.name == "QType"

    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    def json_type(self) -> str:
        return "string"

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_enum_type(self)


class ArrayType(Type):
    """``['Foo']``, named ``FooList``; exists under its element's condition."""

    meta = "array"

    def __init__(self, name: str, info: SourceInfo | None, element_type_name: str) -> None:
        super().__init__(name, info)
        self.element_type_name = element_type_name
        self._element_type: Type | None = None

    @property
    def element_type(self) -> Type:
        assert self._element_type is not None, "schema not checked yet"
        return self._element_type

    @property
    def ifcond(self) -> IfCond:
        return self.element_type.ifcond

    def check(self, schema: Schema) -> None:
        super().check(schema)
        owner = (self.info.defn_meta or "definition") if self.info else "built-in"
        what = f"{owner}'s array type ['{self.element_type_name}']"
        self._element_type = schema.resolve_type(self.element_type_name, self.info, what)
        assert not isinstance(self._element_type, ArrayType)

    def is_implicit(self) -> bool:
        return True

    def json_type(self) -> str:
        return "array"

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_array_type(self)

    def describe(self) -> str:
        return f"{self.meta} type ['{self.element_type_name}']"


class ObjectType(Type):
    """A struct (``local_members``, optional ``base``), a union (``base``
    and ``variants``), or an implicit object (``q_obj_*``, ``q_empty``).

    :ivar members: all members: the base's first, then the local ones.
        Branch members are not included.
    """

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        doc: DocBlock | None,
        ifcond: IfCond | None,
        features: list[Feature] | None,
        base_name: str | None,
        local_members: list[Member],
        variants: Variants | None,
    ) -> None:
        super().__init__(name, info, doc, ifcond, features)
        self.meta = "union" if variants is not None else "struct"
        self.base_name = base_name
        self.base: ObjectType | None = None
        self.local_members = local_members
        for m in local_members:
            m.set_defined_in(name)
        self.variants = variants
        if variants is not None:
            variants.set_defined_in(name)
        self.members: list[Member] = []
        self._complete = False

    def check(self, schema: Schema) -> None:
        # Called recursively for bases and branches, so a type may be asked
        # more than once; a request while in progress means a cycle.
        if self._complete:
            return
        if self._checked:
            raise QAPISemError(
                _need_info(self.info),
                f"object {self.name} contains itself (through its base or branches)",
            )
        super().check(schema)
        seen: dict[str, SchemaMember] = {}
        if self.base_name is not None:
            base = schema.resolve_type(self.base_name, self.info, "'base'")
            if not isinstance(base, ObjectType) or base.variants is not None:
                raise QAPISemError(
                    _need_info(self.info),
                    f"'base' requires a struct type, {base.describe()} isn't one",
                )
            self.base = base
            base.check(schema)
            base.check_clash(self.info, seen)
        for m in self.local_members:
            m.check(schema)
            m.check_clash(self.info, seen)
        members = [m for m in seen.values() if isinstance(m, Member)]
        if self.variants is not None:
            self.variants.check(schema, seen)
            self.variants.check_clash(self.info, seen)
        self.members = members
        self._complete = True

    def check_clash(self, info: SourceInfo | None, seen: dict[str, SchemaMember]) -> None:
        """Add this struct's members to *seen*, rejecting clashes."""
        assert self._complete
        assert self.variants is None
        for m in self.members:
            m.check_clash(info, seen)

    def connect_doc(self, doc: DocBlock | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if self.base is not None and self.base.is_implicit():
            self.base.connect_doc(doc)
        for m in self.local_members:
            m.connect_doc(doc)

    def is_implicit(self) -> bool:
        return self.name.startswith("q_")

    def is_empty(self) -> bool:
        """No members and no branches."""
        assert self._complete
        return not self.members and self.variants is None

    def json_type(self) -> str:
        return "object"

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_object_type(self)


class AlternateType(Type):
    """A value that may be one of several types, told apart by JSON type."""

    meta = "alternate"

    def __init__(
        self,
        name: str,
        info: SourceInfo,
        doc: DocBlock | None,
        ifcond: IfCond | None,
        features: list[Feature] | None,
        variants: Variants,
    ) -> None:
        super().__init__(name, info, doc, ifcond, features)
        variants.set_defined_in(name)
        variants.tag_member.set_defined_in(name)
        self.variants = variants

    def check(self, schema: Schema) -> None:
        super().check(schema)
        info = _need_info(self.info)
        self.variants.tag_member.check(schema)
        self.variants.check(schema, {})
        seen: dict[str, SchemaMember] = {}
        taken: dict[str, tuple[str, bool]] = {}  # qtype -> (branch, is a string)
        for v in self.variants.variants:
            v.check_clash(self.info, seen)
            qtype = v.type.alternate_qtype()
            if qtype is None:
                raise QAPISemError(
                    info,
                    f"{v.describe(self.info)} cannot use {v.type.describe()}; an "
                    f"alternate branch needs a type with one definite JSON type",
                )
            conflicting = {qtype}
            if qtype == "qstring":
                # The keyval/command-line parser sees every value as a string
                # first, so strings must not look like other scalars.
                if isinstance(v.type, EnumType):
                    for m in v.type.members:
                        if m.name in ("on", "off"):
                            conflicting.add("qbool")
                        if re.match(r"[-+0-9.]", m.name):
                            conflicting.add("qnum")
                else:
                    conflicting.update(("qnum", "qbool"))
            for qt in sorted(conflicting):
                if qt in taken:
                    other, other_is_string = taken[qt]
                    hint = ""
                    if qtype == "qstring" or other_is_string:
                        hint = " (on the command line, strings can look like numbers or booleans)"
                    raise QAPISemError(
                        info,
                        f"{v.describe(self.info)} can't be distinguished from "
                        f"'{other}': both can be a JSON {_QTYPE_WORDS[qt]}{hint}",
                    )
                taken[qt] = (v.name, qtype == "qstring")

    def connect_doc(self, doc: DocBlock | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        for v in self.variants.variants:
            v.connect_doc(doc)

    def json_type(self) -> str:
        return "value"

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_alternate_type(self)


class Command(Entity):
    """A QMP command.

    :ivar arg_type: arguments (an implicit ``q_obj_<name>-arg`` type when
        given inline), or ``None`` when it takes none.
    :ivar ret_type: return type, or ``None`` (returns ``{}``).
    """

    meta = "command"

    def __init__(
        self,
        name: str,
        info: SourceInfo,
        doc: DocBlock | None,
        ifcond: IfCond | None,
        features: list[Feature] | None,
        arg_type_name: str | None,
        ret_type_name: str | None,
        *,
        gen: bool = True,
        success_response: bool = True,
        boxed: bool = False,
        allow_oob: bool = False,
        allow_preconfig: bool = False,
        coroutine: bool = False,
    ) -> None:
        super().__init__(name, info, doc, ifcond, features)
        self.arg_type_name = arg_type_name
        self.ret_type_name = ret_type_name
        self.arg_type: ObjectType | None = None
        self.ret_type: Type | None = None
        self.gen = gen
        self.success_response = success_response
        self.boxed = boxed
        self.allow_oob = allow_oob
        self.allow_preconfig = allow_preconfig
        self.coroutine = coroutine

    def check(self, schema: Schema) -> None:
        super().check(schema)
        info = _need_info(self.info)
        if self.arg_type_name is not None:
            self.arg_type = _check_args_type(
                schema, "command", self.arg_type_name, info, self.boxed
            )
        if self.ret_type_name is not None:
            ret = schema.resolve_type(self.ret_type_name, info, "command's 'returns'")
            self.ret_type = ret
            if self.name not in info.pragma.command_returns_exceptions:
                typ = ret.element_type if isinstance(ret, ArrayType) else ret
                if not isinstance(typ, ObjectType):
                    raise QAPISemError(
                        info,
                        f"command's 'returns' cannot take {ret.describe()}; return an "
                        f"object type or an array of one (or list the command in "
                        f"pragma 'command-returns-exceptions')",
                    )

    def connect_doc(self, doc: DocBlock | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if doc is not None and self.arg_type is not None and self.arg_type.is_implicit():
            self.arg_type.connect_doc(doc)

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_command(self)


class Event(Entity):
    """A QMP event; ``arg_type`` as for :class:`Command`."""

    meta = "event"

    def __init__(
        self,
        name: str,
        info: SourceInfo,
        doc: DocBlock | None,
        ifcond: IfCond | None,
        features: list[Feature] | None,
        arg_type_name: str | None,
        boxed: bool = False,
    ) -> None:
        super().__init__(name, info, doc, ifcond, features)
        self.arg_type_name = arg_type_name
        self.arg_type: ObjectType | None = None
        self.boxed = boxed

    def check(self, schema: Schema) -> None:
        super().check(schema)
        if self.arg_type_name is not None:
            self.arg_type = _check_args_type(
                schema, "event", self.arg_type_name, _need_info(self.info), self.boxed
            )

    def connect_doc(self, doc: DocBlock | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if doc is not None and self.arg_type is not None and self.arg_type.is_implicit():
            self.arg_type.connect_doc(doc)

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_event(self)


def _check_args_type(
    schema: Schema, meta: str, name: str, info: SourceInfo, boxed: bool
) -> ObjectType:
    typ = schema.resolve_type(name, info, f"{meta}'s 'data'")
    if not isinstance(typ, ObjectType):
        raise QAPISemError(
            info,
            f"{meta}'s 'data' cannot take {typ.describe()}; "
            f"use a struct type or an object of members",
        )
    if typ.variants is not None and not boxed:
        raise QAPISemError(
            info, f"{meta}'s 'data' can take {typ.describe()} only with 'boxed': true"
        )
    return typ


class Include:
    """Where a schema file includes another (``name`` is the included
    module's name)."""

    def __init__(self, name: str, info: SourceInfo) -> None:
        self.name = name
        self.info = info

    def visit(self, visitor: Visitor) -> None:
        visitor.visit_include(self.name, self.info)


class Module:
    """The entities (and includes) defined by one schema file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list[Entity | Include] = []

    def entities(self) -> list[Entity]:
        return [e for e in self.items if isinstance(e, Entity)]


# Section: visitor


class Visitor:
    """Walks a schema with :meth:`Schema.visit`; override what you need.

    The call sequence is ``visit_begin(schema)``, then for each module
    ``visit_module(name)`` followed by one call per include and per entity
    for which ``visit_needed(entity)`` is true, in definition order, then
    ``visit_end()``.  Entity callbacks receive the entity itself, except
    :meth:`visit_builtin_type` and :meth:`visit_include`, which keep QEMU's
    argument lists.
    """

    def visit_begin(self, schema: Schema) -> None:
        """Start of the walk."""

    def visit_end(self) -> None:
        """End of the walk."""

    def visit_module(self, name: str) -> None:
        """The following entities belong to module (file) *name*."""

    def visit_needed(self, entity: Entity) -> bool:
        """Should *entity* be visited?  Default: everything."""
        return True

    def visit_include(self, name: str, info: SourceInfo) -> None:
        """The current module includes module *name* at *info*."""

    def visit_builtin_type(self, name: str, info: SourceInfo | None, json_type: str) -> None:
        """A built-in type (``info`` is always ``None``)."""

    def visit_enum_type(self, typ: EnumType) -> None:
        """An enum type (also the implicit ``QType``)."""

    def visit_array_type(self, typ: ArrayType) -> None:
        """An array type ``FooList`` (built-in arrays included)."""

    def visit_object_type(self, typ: ObjectType) -> None:
        """A struct, union or implicit object type."""

    def visit_alternate_type(self, typ: AlternateType) -> None:
        """An alternate type."""

    def visit_command(self, command: Command) -> None:
        """A command."""

    def visit_event(self, event: Event) -> None:
        """An event."""


# Section: the schema


class Schema:
    """A parsed and checked schema.

    :param fname: the main schema file; included files are found relative
        to the including file.
    :raise QAPIError: if a file cannot be read or the schema is invalid.

    :ivar docs: all doc comments, in reading order.
    :ivar pragma: the pragma settings in effect.
    :ivar the_empty_object_type: the implicit empty object ``q_empty``.
    """

    def __init__(self, fname: str) -> None:
        self.fname = fname
        try:
            parser = SchemaParser(fname)
        except OSError as err:
            raise QAPIError(f"can't read schema file '{fname}': {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise QAPIError(f"schema file '{fname}' is not valid UTF-8: {err}") from err
        definitions = check_exprs(parser.exprs)
        self.docs: list[DocBlock] = parser.docs
        self.pragma: Pragma = parser.pragma
        self._schema_dir = os.path.dirname(fname)
        self._items: list[Entity | Include] = []
        self._entity_dict: dict[str, Entity] = {}
        self._modules: dict[str, Module] = {}
        self._predefining = True
        self._make_module(BUILTIN_MODULE)
        self._make_module(fname)
        self.the_empty_object_type = self._def_predefineds()
        self._predefining = False
        for defn in definitions:
            self._def_definition(defn)
        self._check()

    # Section: lookups

    def lookup_entity(self, name: str) -> Entity | None:
        """The entity called *name*, if any."""
        return self._entity_dict.get(name)

    def lookup_type(self, name: str) -> Type | None:
        """The type called *name*, if any."""
        ent = self._entity_dict.get(name)
        return ent if isinstance(ent, Type) else None

    def resolve_type(
        self,
        name: str,
        info: SourceInfo | None,
        what: str | Callable[[SourceInfo | None], str],
    ) -> Type:
        """Look up a type that *what* (at *info*) refers to; reject unknown."""
        typ = self.lookup_type(name)
        if typ is None:
            if callable(what):
                what = what(info)
            raise QAPISemError(
                _need_info(info),
                f"{what} uses unknown type '{name}'; define it or fix the spelling",
            )
        return typ

    # Section: iteration

    @property
    def modules(self) -> list[Module]:
        """The modules (files), built-ins first, in order of first inclusion."""
        return list(self._modules.values())

    def entities(self) -> list[Entity]:
        """All entities in definition order (see the module docstring)."""
        return [e for mod in self._modules.values() for e in mod.items if isinstance(e, Entity)]

    def types(self) -> list[Type]:
        return [e for e in self.entities() if isinstance(e, Type)]

    def commands(self) -> list[Command]:
        return [e for e in self.entities() if isinstance(e, Command)]

    def events(self) -> list[Event]:
        return [e for e in self.entities() if isinstance(e, Event)]

    def visit(self, visitor: Visitor) -> None:
        """Walk the schema in definition order; see :class:`Visitor`."""
        visitor.visit_begin(self)
        for mod in self._modules.values():
            visitor.visit_module(mod.name)
            for item in mod.items:
                if isinstance(item, Include) or visitor.visit_needed(item):
                    item.visit(visitor)
        visitor.visit_end()

    # Section: building

    def _module_name(self, fname: str) -> str:
        if fname.startswith("./"):
            return fname  # system module
        return os.path.relpath(fname, self._schema_dir)

    def _make_module(self, fname: str) -> Module:
        name = self._module_name(fname)
        mod = self._modules.get(name)
        if mod is None:
            mod = self._modules[name] = Module(name)
        return mod

    def _def_entity(self, ent: Entity | Include) -> None:
        assert ent.info is not None or self._predefining
        self._items.append(ent)
        if isinstance(ent, Include):
            return
        other = self._entity_dict.get(ent.name)
        if other is not None:
            info = _need_info(ent.info)
            if other.info is not None:
                prev = QAPISemError(other.info, "previous definition")
                raise QAPISemError(info, f"'{ent.name}' is already defined\n{prev}")
            raise QAPISemError(info, f"{other.describe()} is already defined; pick another name")
        self._entity_dict[ent.name] = ent

    def _def_predefineds(self) -> ObjectType:
        for name, json_type in BUILTIN_TYPES:
            self._def_entity(BuiltinType(name, json_type))
            # Arrays of built-ins always exist (as in QEMU).
            self._make_array_type(name, None)
        empty = ObjectType("q_empty", None, None, None, None, None, [], None)
        self._def_entity(empty)
        qtype_values = [EnumMember(n, None) for n in _QTYPE_VALUES]
        self._def_entity(EnumType("QType", None, None, None, None, qtype_values, "QTYPE"))
        return empty

    def _make_array_type(self, element_type: str, info: SourceInfo | None) -> str:
        name = element_type + "List"  # users can't define names ending in 'List'
        if self.lookup_type(name) is None:
            self._def_entity(ArrayType(name, info, element_type))
        return name

    def _type_name(self, ref: TypeRef, info: SourceInfo) -> str:
        return self._make_array_type(ref.name, info) if ref.array else ref.name

    def _make_features(self, features: list[FeatureDef], info: SourceInfo) -> list[Feature]:
        return [Feature(f.name, info, f.ifcond) for f in features]

    def _make_enum_members(self, values: list[EnumValueDef], info: SourceInfo) -> list[EnumMember]:
        return [
            EnumMember(v.name, info, v.ifcond, self._make_features(v.features, info))
            for v in values
        ]

    def _make_members(self, members: list[MemberDef], info: SourceInfo) -> list[Member]:
        return [
            Member(
                m.name,
                info,
                self._type_name(m.type, info),
                m.optional,
                m.ifcond,
                self._make_features(m.features, info),
            )
            for m in members
        ]

    def _make_variants(self, branches: list[BranchDef], info: SourceInfo) -> list[Variant]:
        return [Variant(b.name, info, self._type_name(b.type, info), b.ifcond) for b in branches]

    def _make_implicit_object_type(
        self, name: str, info: SourceInfo, ifcond: IfCond, role: str, members: list[Member]
    ) -> str | None:
        if not members:
            return None
        name = f"q_obj_{name}-{role}"
        if not isinstance(self.lookup_entity(name), ObjectType):
            self._def_entity(ObjectType(name, info, None, ifcond, None, None, members, None))
        # else: the owner is a duplicate definition, rejected right after.
        return name

    def _args_name(self, data: TypeRef | list[MemberDef] | None, defn: Definition) -> str | None:
        if data is None:
            return None
        if isinstance(data, TypeRef):
            return self._type_name(data, defn.info)
        members = self._make_members(data, defn.info)
        return self._make_implicit_object_type(defn.name, defn.info, defn.ifcond, "arg", members)

    def _def_definition(self, defn: Definition | IncludeDef) -> None:
        if isinstance(defn, IncludeDef):
            mod = self._make_module(defn.fname)
            self._def_entity(Include(mod.name, defn.info))
            return
        info = defn.info
        features = self._make_features(defn.features, info)
        ent: Entity
        if isinstance(defn, EnumDef):
            ent = EnumType(
                defn.name,
                info,
                defn.doc,
                defn.ifcond,
                features,
                self._make_enum_members(defn.values, info),
                defn.prefix,
            )
        elif isinstance(defn, StructDef):
            ent = ObjectType(
                defn.name,
                info,
                defn.doc,
                defn.ifcond,
                features,
                defn.base,
                self._make_members(defn.members, info),
                None,
            )
        elif isinstance(defn, UnionDef):
            base: str | None
            if isinstance(defn.base, str):
                base = defn.base
            else:
                base = self._make_implicit_object_type(
                    defn.name,
                    info,
                    defn.ifcond,
                    "base",
                    self._make_members(defn.base, info),
                )
            variants = self._make_variants(defn.branches, info)
            ent = ObjectType(
                defn.name,
                info,
                defn.doc,
                defn.ifcond,
                features,
                base,
                [],
                Variants(defn.discriminator, info, None, variants),
            )
        elif isinstance(defn, AlternateDef):
            variants = self._make_variants(defn.branches, info)
            tag = Member("type", info, "QType", False)
            ent = AlternateType(
                defn.name,
                info,
                defn.doc,
                defn.ifcond,
                features,
                Variants(None, info, tag, variants),
            )
        elif isinstance(defn, CommandDef):
            args = self._args_name(defn.data, defn)
            rets = self._type_name(defn.returns, info) if defn.returns else None
            ent = Command(
                defn.name,
                info,
                defn.doc,
                defn.ifcond,
                features,
                args,
                rets,
                gen=defn.gen,
                success_response=defn.success_response,
                boxed=defn.boxed,
                allow_oob=defn.allow_oob,
                allow_preconfig=defn.allow_preconfig,
                coroutine=defn.coroutine,
            )
        else:
            assert isinstance(defn, EventDef)
            args = self._args_name(defn.data, defn)
            ent = Event(defn.name, info, defn.doc, defn.ifcond, features, args, defn.boxed)
        self._def_entity(ent)

    def _check(self) -> None:
        for item in self._items:
            if isinstance(item, Include):
                continue
            item.check(self)
            item.connect_doc()
            item.check_doc()
        for item in self._items:
            if isinstance(item, Include):
                fname = item.info.fname
            elif isinstance(item, ArrayType):
                elt_info = item.element_type.info
                fname = elt_info.fname if elt_info else BUILTIN_MODULE
            else:
                fname = item.info.fname if item.info else BUILTIN_MODULE
            mod = self._modules[self._module_name(fname)]
            mod.items.append(item)
            if isinstance(item, Entity):
                item.module = mod.name


def _need_info(info: SourceInfo | None) -> SourceInfo:
    """Errors are only ever raised for things written in a file."""
    assert info is not None
    return info


def _need(value: str | None) -> str:
    assert value is not None
    return value

"""Writes a typed async Python client package for a QAPI schema.

The package (``OUTDIR/``) holds:

``models.py``
    one ``enum.Enum`` per enum, one attrs class per struct, and per union a base class
    (the union's common members) with one subclass per branch, named
    ``Union_branch`` (``BlockdevOptions_file``), whose discriminator is a class
    constant.  Alternates are type aliases of their branches (``BlockdevRef`` is
    ``BlockdevOptions | str``) with ``encode_``/``decode_`` functions: a value on the
    wire *is* one of the branches, told apart by its JSON type, so a wrapper object
    would add nothing a type checker does not already see.  Every class has
    ``to_json()`` and ``from_json()`` following QAPI's rules: members by their schema
    names (dashes), optional members omitted when ``None``, union base and branch
    members side by side (flat unions), JSON ``null`` as ``NULL``.
``events.py``
    one attrs class per event (``JobStatusChangeEvent``), ``UnknownEvent`` for events
    the schema does not know, the ``Event`` union and ``parse_event()``.
``client.py``
    ``Client``: one async method per command, arguments as typed keyword arguments
    (a boxed union argument as one positional argument), the reply decoded into its
    type; ``events()`` gives a typed event iterator.
``_runtime.py``, ``_base.py``
    copies of :mod:`.runtime` and :mod:`.clientbase`.

Conditions (``if``) are not evaluated: a client cannot know how the daemon it will
talk to was built, so every conditional definition, member and value is generated
and its docstring says under which condition it exists; a daemon without it answers
the command with ``CommandNotFound`` as usual.

Several schema files make one client; a name defined by more than one of them is
taken from the first.  The output is deterministic (no dates, no absolute paths), so
a committed client can be compared with a fresh one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from qjobd.qapi.parser import DocBlock
from qjobd.qapi.schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    Command,
    Entity,
    EnumType,
    Event,
    Feature,
    IfCond,
    Member,
    ObjectType,
    Schema,
    Type,
    Visitor,
)

from .naming import class_name, enum_member_name, event_class_name, member_name

__all__ = ["GeneratorError", "generate", "write_package"]

_HERE = Path(__file__).resolve().parent

_INTS = frozenset(("int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                   "uint64", "size"))
_BUILTIN_PY = {"str": "str", "number": "float", "bool": "bool", "any": "object",
               "null": "_rt.Null"} | dict.fromkeys(_INTS, "int")

#: Attribute names the generated event classes use themselves.
_EVENT_OWN = frozenset(("timestamp", "raw", "NAME"))
#: Method and attribute names of the generated Client that commands must not take.
_CLIENT_OWN = frozenset(("connect", "negotiate", "capabilities", "version", "disconnect",
                         "execute", "events", "qmp"))


class GeneratorError(Exception):
    """The schema has names this generator cannot map to distinct Python names."""


# Section: collecting the schema


class _Collector(Visitor):
    """Named types, commands and events of one or more schemas, first definition wins."""

    def __init__(self) -> None:
        self.enums: list[EnumType] = []
        self.objects: list[ObjectType] = []
        self.alternates: list[AlternateType] = []
        self.commands: list[Command] = []
        self.events: list[Event] = []
        self._seen: set[str] = set()

    def _first(self, entity: Entity) -> bool:
        if entity.name in self._seen:
            return False
        self._seen.add(entity.name)
        return True

    def visit_enum_type(self, typ: EnumType) -> None:
        if not typ.is_implicit() and self._first(typ):
            self.enums.append(typ)

    def visit_object_type(self, typ: ObjectType) -> None:
        if not typ.is_implicit() and self._first(typ):
            self.objects.append(typ)

    def visit_alternate_type(self, typ: AlternateType) -> None:
        if self._first(typ):
            self.alternates.append(typ)

    def visit_command(self, command: Command) -> None:
        if self._first(command):
            self.commands.append(command)

    def visit_event(self, event: Event) -> None:
        if self._first(event):
            self.events.append(event)


# Section: docstrings


def _notes(ifcond: IfCond, features: Sequence[Feature]) -> str:
    parts = [f"only if {ifcond}"] if ifcond.is_present() else []
    parts += [feature.name for feature in features if feature.is_special()]
    return f" ({'; '.join(parts)})" if parts else ""


def _section(doc: DocBlock | None, name: str) -> str:
    if doc is None:
        return ""
    found = doc.section(name)
    return found.text if found is not None else ""


def _arg_text(doc: DocBlock | None, name: str) -> str:
    if doc is None:
        return ""
    found = doc.args.get(name)
    return found.text if found is not None else ""


def _docstring(lines: Iterable[str], indent: str) -> str:
    """A docstring literal from ``lines`` (``\\`` and quotes escaped), indented."""
    text = "\n".join(lines).strip("\n")
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = [line.rstrip() for line in text.split("\n")]
    if len(body) == 1 and not body[0].endswith('"'):
        return f'{indent}"""{body[0]}"""\n'
    out = [f'{indent}"""{body[0]}'] + [f"{indent}{line}" if line else "" for line in body[1:]]
    return "\n".join(out) + f'\n{indent}"""\n'


def _item(label: str, text: str, notes: str) -> list[str]:
    """``label: text`` as a hanging paragraph."""
    first, *rest = (text or "(undocumented)").split("\n")
    return [f"{label}{notes}: {first}", *(f"    {line}" for line in rest)]


def _overview(entity: Entity, fallback: str) -> list[str]:
    doc = entity.doc
    lines = doc.body.text.split("\n") if doc is not None and doc.body.text else [fallback]
    notes = _notes(entity.ifcond, entity.features)
    if notes:
        lines += ["", f"Exists{notes}." if entity.ifcond.is_present() else f"Flags{notes}."]
    return lines


def _trailer(doc: DocBlock | None, *tags: str) -> list[str]:
    lines: list[str] = []
    for tag in tags:
        text = _section(doc, tag)
        if text:
            lines += ["", *_item(tag, text, "")]
    return lines


# Section: the generator


class _Generator:
    def __init__(self, schemas: Sequence[Schema]) -> None:
        collector = _Collector()
        for schema in schemas:
            schema.visit(collector)
        self.c = collector
        self.names = [os.path.basename(schema.fname) for schema in schemas]
        self._classes: dict[str, str] = {}
        for typ in [*collector.enums, *collector.objects]:
            self._claim(class_name(typ.name), typ.name)
            if isinstance(typ, ObjectType) and typ.variants is not None:
                for variant in typ.variants.variants:
                    self._claim(self._branch_class(typ, variant.name), f"{typ.name}/{variant.name}")
        for alt in collector.alternates:
            self._claim(class_name(alt.name), alt.name)

    def _claim(self, python: str, schema_name: str) -> None:
        other = self._classes.get(python)
        if other is not None:
            raise GeneratorError(f"'{schema_name}' and '{other}' would both be {python}")
        self._classes[python] = schema_name

    @staticmethod
    def _branch_class(union: ObjectType, branch: str) -> str:
        return f"{class_name(union.name)}_{enum_member_name(branch).lower()}"

    # Types as Python annotations and conversions; p is the models prefix ("" or "_m.").

    def pytype(self, typ: Type, p: str) -> str:
        if isinstance(typ, BuiltinType):
            return _BUILTIN_PY[typ.name]
        if isinstance(typ, ArrayType):
            return f"list[{self.pytype(typ.element_type, p)}]"
        return p + class_name(typ.name)

    def encode(self, typ: Type, expr: str, p: str) -> str:
        if isinstance(typ, BuiltinType):
            return "None" if typ.name == "null" else expr
        if isinstance(typ, EnumType):
            return f"{expr}.value"
        if isinstance(typ, ArrayType):
            return f"[{self.encode(typ.element_type, 'q_v', p)} for q_v in {expr}]"
        if isinstance(typ, AlternateType):
            return f"{p}encode_{class_name(typ.name)}({expr})"
        return f"{expr}.to_json()"

    def decode(self, typ: Type, expr: str, where: str, p: str) -> str:
        if isinstance(typ, BuiltinType):
            name = typ.name
            if name == "any":
                return expr
            kind = {"str": "str", "number": "float", "bool": "bool", "null": "null"}.get(
                name, "int")
            return f"_rt.as_{kind}({expr}, {where!r})"
        if isinstance(typ, EnumType):
            return f"_rt.as_enum({p}{class_name(typ.name)}, {expr}, {where!r})"
        if isinstance(typ, ArrayType):
            item = self.decode(typ.element_type, "q_v", f"{where}[]", p)
            return f"_rt.as_list({expr}, lambda q_v: {item}, {where!r})"
        if isinstance(typ, AlternateType):
            return f"{p}decode_{class_name(typ.name)}({expr})"
        return f"{p}{class_name(typ.name)}.from_json({expr})"

    # Members shared by classes, events and commands.

    @staticmethod
    def _python_names(members: Sequence[Member], reserved: frozenset[str] = frozenset()
                      ) -> list[str]:
        names = []
        for m in members:
            name = member_name(m.name)
            while name in reserved:
                name += "_"
            names.append(name)
        return names

    def _fields(self, members: Sequence[Member], names: Sequence[str], p: str) -> list[str]:
        out = []
        for m, name in zip(members, names, strict=True):
            annotation = self.pytype(m.type, p)
            out.append(f"    {name}: {annotation} | None = None" if m.optional
                       else f"    {name}: {annotation}")
        return out

    def _encode_members(self, members: Sequence[Member], names: Sequence[str], source: str,
                        target: str, indent: str, p: str) -> list[str]:
        out = []
        for m, name in zip(members, names, strict=True):
            value = self.encode(m.type, f"{source}{name}", p)
            if m.optional:
                out += [f"{indent}if {source}{name} is not None:",
                        f"{indent}    {target}[{m.name!r}] = {value}"]
            else:
                out.append(f"{indent}{target}[{m.name!r}] = {value}")
        return out

    def _decode_members(self, members: Sequence[Member], names: Sequence[str], owner: str,
                        indent: str, p: str) -> list[str]:
        out = []
        for m, name in zip(members, names, strict=True):
            where = f"{owner}.{m.name}"
            if m.optional and isinstance(m.type, BuiltinType) and m.type.name == "any":
                out.append(f"{indent}{name}=q_obj.get({m.name!r}),")
            elif m.optional:
                value = self.decode(m.type, f"q_obj[{m.name!r}]", where, p)
                out.append(f"{indent}{name}={value} if {m.name!r} in q_obj else None,")
            else:
                value = self.decode(m.type, f"_rt.member(q_obj, {m.name!r}, {owner!r})",
                                    where, p)
                out.append(f"{indent}{name}={value},")
        return out

    @staticmethod
    def _member_docs(doc: DocBlock | None, members: Sequence[Member], names: Sequence[str],
                     label: str = "{name}") -> list[str]:
        lines: list[str] = []
        for m, name in zip(members, names, strict=True):
            text = _arg_text(doc, m.name)
            if m.optional:
                text = f"(optional) {text}" if text else "(optional)"
            lines += _item(label.format(name=name), text, _notes(m.ifcond, m.features))
        return lines

    # models.py

    def models(self) -> str:
        out = [self._header("The schema's types: enums, structs, unions and alternates."),
               "from __future__ import annotations", "", "import enum",
               "from typing import ClassVar, TypeAlias", "", "import attrs", "",
               "from . import _runtime as _rt", ""]
        for enum_type in self.c.enums:
            out += self._enum(enum_type)
        for obj in self.c.objects:
            out += self._union(obj) if obj.variants is not None else self._struct(obj)
        for alt in self.c.alternates:
            out += self._alternate(alt)
        return "\n".join(out).rstrip("\n") + "\n"

    def _header(self, what: str) -> str:
        schemas = ", ".join(self.names)
        return _docstring([f"{what}", "",
                           f"Generated by qjobd-gen-client from {schemas}; do not edit."], "")

    def _enum(self, typ: EnumType) -> list[str]:
        name = class_name(typ.name)
        lines = [*_overview(typ, f"The enum ``{typ.name}``."), "", "Values:", ""]
        members: dict[str, str] = {}
        for m in typ.members:
            python = enum_member_name(m.name)
            if python in members:
                raise GeneratorError(
                    f"values '{m.name}' and '{members[python]}' of {typ.name} would both "
                    f"be {python}")
            members[python] = m.name
            lines += _item(f"``{m.name}``", _arg_text(typ.doc, m.name),
                           _notes(m.ifcond, m.features))
        out = ["", f"class {name}(enum.Enum):", _docstring(lines, "    ").rstrip("\n")]
        out += [f"    {python} = {value!r}" for python, value in members.items()]
        return [*out, ""]

    def _class_doc(self, typ: ObjectType, members: Sequence[Member], names: Sequence[str],
                   extra: Sequence[str] = ()) -> str:
        lines = [*_overview(typ, f"The struct ``{typ.name}``."), *extra]
        if members:
            lines += ["", "Members:", "", *self._member_docs(typ.doc, members, names)]
        return _docstring(lines, "    ").rstrip("\n")

    def _struct(self, typ: ObjectType) -> list[str]:
        name = class_name(typ.name)
        members = typ.members
        names = self._python_names(members)
        out = ["", "@attrs.define(kw_only=True)", f"class {name}:",
               self._class_doc(typ, members, names), ""]
        out += self._fields(members, names, "")
        out += self._to_json(members, names, None)
        out += self._from_json(name, typ.name, members, names)
        return [*out, ""]

    def _to_json(self, members: Sequence[Member], names: Sequence[str],
                 tag: tuple[Member, str] | None) -> list[str]:
        out = ["", "    def to_json(self) -> dict[str, object]:",
               '        """The value as QMP JSON."""']
        if not members:
            return [*out, "        return {}"]
        out.append("        q_out: dict[str, object] = {}")
        for m, name in zip(members, names, strict=True):
            if tag is not None and m is tag[0]:
                out.append(f"        q_out[{m.name!r}] = self.{tag[1]}.value")
            else:
                out += self._encode_members([m], [name], "self.", "q_out", "        ", "")
        return [*out, "        return q_out"]

    def _from_json(self, cls: str, schema_name: str, members: Sequence[Member],
                   names: Sequence[str]) -> list[str]:
        out = ["", "    @classmethod", f"    def from_json(cls, data: object) -> {cls}:",
               '        """Decode QMP JSON; raise DecodeError if it does not fit."""']
        if not members:
            return [*out, f"        _rt.as_object(data, {schema_name!r})", "        return cls()"]
        out += [f"        q_obj = _rt.as_object(data, {schema_name!r})", "        return cls("]
        out += self._decode_members(members, names, schema_name, "            ", "")
        return [*out, "        )"]

    def _union(self, typ: ObjectType) -> list[str]:
        assert typ.variants is not None
        name = class_name(typ.name)
        tag = typ.variants.tag_member
        tag_name = member_name(tag.name)
        tag_class = class_name(tag.type.name)
        common = [m for m in typ.members if m is not tag]
        common_names = self._python_names(common)
        branches = typ.variants.variants
        first = self._branch_class(typ, branches[0].name)
        extra = ["", f"A union on ``{tag.name}``: build one of its branch classes "
                 f"(``{first}``, ...); ``{tag_name}`` is a class constant of each."]
        out = ["", "@attrs.define(kw_only=True)", f"class {name}:",
               self._class_doc(typ, common, common_names, extra), "",
               f"    {tag_name}: ClassVar[{tag_class}]"]
        out += self._fields(common, common_names, "")
        out += ["", "    def to_json(self) -> dict[str, object]:",
                '        """The value as QMP JSON (implemented by each branch class)."""',
                f"        raise NotImplementedError('build a branch class of {name}, such as "
                f"{first}')",
                "", "    @classmethod", f"    def from_json(cls, data: object) -> {name}:",
                '        """Decode QMP JSON into the branch class its discriminator names."""',
                f"        q_obj = _rt.as_object(data, {typ.name!r})",
                "        q_tag = " + self.decode(
                    tag.type, f"_rt.member(q_obj, {tag.name!r}, {typ.name!r})",
                    f"{typ.name}.{tag.name}", ""),
                f"        return _{name}_BRANCHES[q_tag].from_json(q_obj)", ""]
        table = []
        for variant in branches:
            branch = self._branch_class(typ, variant.name)
            branch_type = variant.type
            assert isinstance(branch_type, ObjectType)
            local = branch_type.members
            local_names = self._python_names(local)
            value = enum_member_name(variant.name)
            lines = [f"``{typ.name}`` with ``{tag.name}`` ``{variant.name}``"
                     f"{_notes(variant.ifcond, [])}."]
            if not branch_type.is_implicit():
                lines.append(f"The branch's members are those of ``{branch_type.name}``.")
            if local:
                lines += ["", "Members:", "",
                          *self._member_docs(branch_type.doc, local, local_names)]
            out += ["", "@attrs.define(kw_only=True)", f"class {branch}({name}):",
                    _docstring(lines, "    ").rstrip("\n"), "",
                    f"    {tag_name}: ClassVar[{tag_class}] = {tag_class}.{value}"]
            out += self._fields(local, local_names, "")
            everything = [*typ.members, *local]
            names = [tag_name if m is tag else n for m, n in zip(
                everything, [*self._python_names(typ.members), *local_names], strict=True)]
            out += self._to_json(everything, names, (tag, tag_name))
            out += self._from_json(branch, typ.name, [*common, *local],
                                   [*common_names, *local_names])
            out.append("")
            table.append(f"    {tag_class}.{value}: {branch},")
        out += ["", f"_{name}_BRANCHES: dict[{tag_class}, type[{name}]] = {{", *table, "}", ""]
        return out

    def _alternate(self, typ: AlternateType) -> list[str]:
        name = class_name(typ.name)
        branches = typ.variants.variants
        union = " | ".join(self.pytype(v.type, "") for v in branches)
        lines = [*_overview(typ, f"The alternate ``{typ.name}``."), "", "Branches:", "",
                 *(line for v in branches for line in _item(
                     f"``{v.name}`` ({self.pytype(v.type, '').removeprefix('_rt.')})",
                     _arg_text(typ.doc, v.name),
                     _notes(v.ifcond, [])))]
        out = ["", f"{name}: TypeAlias = {union}", _docstring(lines, "").rstrip("\n"), "",
               "", f"def encode_{name}(value: {name}) -> object:",
               f'    """A ``{typ.name}`` as QMP JSON."""']
        ordered = sorted(branches, key=lambda v: v.type.name != "bool")  # bool before int
        for v in ordered:
            out += [f"    if {self._python_test(v.type, 'value')}:",
                    f"        return {self.encode(v.type, 'value', '')}"]
        out += [f"    raise TypeError(f'{typ.name} cannot be {{type(value).__name__}}')",
                "", "", f"def decode_{name}(data: object) -> {name}:",
                f'    """Decode a ``{typ.name}`` by the JSON type of ``data``."""']
        for v in branches:
            out += [f"    if {self._json_test(v.type, 'data')}:",
                    f"        return {self.decode(v.type, 'data', typ.name, '')}"]
        kinds = " or ".join(_JSON_WORDS[v.type.json_type()] for v in branches)
        out += [f"    raise _rt.DecodeError(f'{typ.name}: expected {kinds}, "
                f"got {{_rt.kind(data)}}')", ""]
        return out

    def _python_test(self, typ: Type, expr: str) -> str:
        if isinstance(typ, BuiltinType):
            if typ.name in _INTS:
                return f"isinstance({expr}, int) and not isinstance({expr}, bool)"
            if typ.name == "number":
                return f"isinstance({expr}, int | float) and not isinstance({expr}, bool)"
            return f"isinstance({expr}, {_BUILTIN_PY[typ.name]})"
        if isinstance(typ, ArrayType):
            return f"isinstance({expr}, list)"
        return f"isinstance({expr}, {class_name(typ.name)})"

    @staticmethod
    def _json_test(typ: Type, expr: str) -> str:
        json_type = typ.json_type()
        if json_type == "int":
            return f"isinstance({expr}, int) and not isinstance({expr}, bool)"
        if json_type == "number":
            return f"isinstance({expr}, int | float) and not isinstance({expr}, bool)"
        if json_type == "null":
            return f"{expr} is None"
        return f"isinstance({expr}, {_JSON_PY[json_type]})"

    # events.py

    def events(self) -> str:
        out = [self._header("The schema's events as typed classes, and parse_event()."),
               "from __future__ import annotations", "",
               "from collections.abc import Callable, Mapping",
               "from typing import ClassVar, TypeAlias", "", "import attrs", "",
               "from . import _runtime as _rt", "from . import models as _m", "", "",
               "def _timestamp(message: Mapping[str, object]) -> float:",
               '    """The event\'s time in seconds since the epoch (0.0 if absent)."""',
               '    stamp = message.get("timestamp")',
               "    if not isinstance(stamp, dict):", "        return 0.0",
               '    seconds, micro = stamp.get("seconds"), stamp.get("microseconds")',
               "    if not isinstance(seconds, int) or not isinstance(micro, int):",
               "        return 0.0", "    return seconds + micro / 1e6", ""]
        if not self.c.objects:
            out = [line for line in out if "models as _m" not in line]
        classes = []
        for event in self.c.events:
            cls = event_class_name(event.name)
            self._claim(cls, event.name)
            classes.append(cls)
            out += self._event(event, cls)
        out += ["", "@attrs.define(kw_only=True)", "class UnknownEvent:",
                '    """An event this client\'s schema does not describe."""', "",
                "    name: str", "    data: Mapping[str, object]",
                "    timestamp: float = attrs.field(default=0.0, eq=False)",
                "    raw: Mapping[str, object] = attrs.field(factory=dict, eq=False, "
                "repr=False)", "", "",
                "Event: TypeAlias = (", *(f"    {c} |" for c in classes),
                "    UnknownEvent", ")", '"""Any event, as parse_event() returns it."""', "",
                "_PARSERS: dict[str, Callable[[Mapping[str, object]], Event]] = {",
                *(f"    {e.name!r}: {c}.from_message," for e, c in zip(
                    self.c.events, classes, strict=True)),
                "}", "", "",
                "def parse_event(message: Mapping[str, object]) -> Event:",
                '    """A QMP event message as its typed class (UnknownEvent if the schema',
                '    lacks it); raise DecodeError if its data does not fit the schema."""',
                '    name = _rt.as_str(message.get("event"), "event")',
                "    parser = _PARSERS.get(name)", "    if parser is None:",
                '        data = message.get("data", {})',
                "        return UnknownEvent(name=name, data=_rt.as_object(data, name),",
                "                            timestamp=_timestamp(message), raw=message)",
                "    return parser(message)"]
        return "\n".join(out).rstrip("\n") + "\n"

    def _event(self, event: Event, cls: str) -> list[str]:
        arg = event.arg_type
        if event.boxed and arg is not None:
            members: list[Member] = []
            names: list[str] = []
            fields = [f"    data: {self.pytype(arg, '_m.')}"]
            decode = [f"            data={self.decode(arg, 'q_obj', event.name, '_m.')},"]
            docs = ["", "Members:", "", "data: the event's data"]
        else:
            members = list(arg.members) if arg is not None else []
            names = self._python_names(members, _EVENT_OWN)
            fields = self._fields(members, names, "_m.")
            decode = self._decode_members(members, names, event.name, "            ", "_m.")
            docs = (["", "Members:", "", *self._member_docs(event.doc, members, names)]
                    if members else [])
        lines = [*_overview(event, f"The event ``{event.name}``."), *docs,
                 "", "timestamp: when the daemon sent it (seconds since the epoch)",
                 "raw: the whole message as received", *_trailer(event.doc, "Since")]
        out = ["", "@attrs.define(kw_only=True)", f"class {cls}:",
               _docstring(lines, "    ").rstrip("\n"), "",
               f"    NAME: ClassVar[str] = {event.name!r}", *fields,
               "    timestamp: float = attrs.field(default=0.0, eq=False)",
               "    raw: Mapping[str, object] = attrs.field(factory=dict, eq=False, repr=False)",
               "", "    @classmethod",
               f"    def from_message(cls, message: Mapping[str, object]) -> {cls}:",
               '        """Decode a QMP event message (``{"event": ..., "data": ...}``)."""',
               *([f'        q_obj = _rt.as_object(message.get("data", {{}}), {event.name!r})']
                 if decode else []),
               "        return cls(", *decode,
               "            timestamp=_timestamp(message),", "            raw=message,",
               "        )", ""]
        return out

    # client.py

    def client(self) -> str:
        out = [self._header("Client: one typed async method per command of the schema."),
               "from __future__ import annotations", "",
               "from . import _runtime as _rt", "from . import events as _e",
               "from . import models as _m", "from ._base import ClientBase, EventStream",
               "", "",
               "class Client(ClientBase):",
               _docstring([f"A QMP client for {', '.join(self.names)}, on ``qemu.qmp``.", "",
                           "Commands that fail raise ``qemu.qmp.ExecuteError``; replies ",
                           "that do not fit the schema raise ``DecodeError``::", "",
                           "    async with Client() as client:",
                           "        await client.connect('/run/qjobd/qmp.sock')",
                           "        for job in await client.query_jobs():",
                           "            print(job.id, job.status.value)"],
                          "    ").rstrip("\n"),
               "", "    def events(self, *names: str) -> EventStream[_e.Event]:",
               '        """Typed events from now on (only those called ``names`` if any);',
               '        use it as a context manager, iterate it or ``await get()``."""',
               "        return EventStream(self.qmp, _e.parse_event, names)"]
        used: set[str] = set(_CLIENT_OWN)
        for command in self.c.commands:
            method = member_name(command.name)
            while method in used:
                method += "_"
            used.add(method)
            out += self._command(command, method)
        text = "\n".join(out).rstrip("\n") + "\n"
        for module, alias in (("_runtime", "_rt"), ("models", "_m")):
            if f"{alias}." not in text.split("class Client", 1)[1]:
                text = text.replace(f"from . import {module} as {alias}\n", "")
        return text

    def _command(self, command: Command, method: str) -> list[str]:
        arg = command.arg_type
        doc = command.doc
        params = ["        self,"]
        body: list[str] = []
        lines = _overview(command, f"The command ``{command.name}``.")
        call = f"await self.execute({command.name!r})"
        if arg is not None and arg.variants is not None:
            params.append(f"        arguments: {self.pytype(arg, '_m.')},")
            params.append("        /,")
            call = f"await self.execute({command.name!r}, arguments.to_json())"
            lines += ["", f":param arguments: the ``{arg.name}`` to send"]
        elif arg is not None and arg.members:
            members = sorted(arg.members, key=lambda m: m.optional)
            names = self._python_names(members, frozenset(("arguments",)))
            params.append("        *,")
            for m, name in zip(members, names, strict=True):
                annotation = self.pytype(m.type, "_m.")
                params.append(f"        {name}: {annotation} | None = None," if m.optional
                              else f"        {name}: {annotation},")
            body = ["        q_args: dict[str, object] = {}"]
            body += self._encode_members(arg.members, self._python_names(
                arg.members, frozenset(("arguments",))), "", "q_args", "        ", "_m.")
            call = f"await self.execute({command.name!r}, q_args)"
            lines += ["", *self._member_docs(doc, members, names, ":param {name}")]
        ret = command.ret_type
        returns = "None" if ret is None else self.pytype(ret, "_m.")
        if ret is not None:
            returns_text = _section(doc, "Returns")
            lines += ["", *_item(":returns", returns_text or f"the ``{ret.name}`` reply", "")]
        lines += _trailer(doc, "Since")
        out = ["", f"    async def {method}(", *params, f"    ) -> {returns}:",
               _docstring(lines, "        ").rstrip("\n"), *body]
        if ret is None:
            out.append(f"        {call}")
        else:
            out += [f"        q_reply = {call}",
                    f"        return {self.decode(ret, 'q_reply', command.name, '_m.')}"]
        return out

    def package_init(self) -> str:
        schemas = ", ".join(self.names)
        lines = [f"A typed async QMP client for {schemas}.", "",
                 "Generated by qjobd-gen-client; do not edit.  ``Client`` has one method per",
                 "command; ``models`` holds the types, ``events`` the event classes."]
        return "\n".join([
            _docstring(lines, "").rstrip("\n"), "",
            "from ._base import EventStream, ExecuteError",
            "from ._runtime import NULL, DecodeError, Null",
            "from .client import Client",
            "from .events import Event, UnknownEvent, parse_event",
            "",
            '__all__ = ["NULL", "Client", "DecodeError", "Event", "EventStream", '
            '"ExecuteError", "Null",',
            '           "UnknownEvent", "parse_event"]', ""])

    def files(self) -> dict[str, str]:
        copied = "# Copied by qjobd-gen-client from qjobd/clientgen/{}; do not edit.\n"
        return {
            "__init__.py": self.package_init(),
            "_runtime.py": copied.format("runtime.py") + (_HERE / "runtime.py").read_text(),
            "_base.py": copied.format("clientbase.py") + (_HERE / "clientbase.py").read_text(),
            "models.py": self.models(),
            "events.py": self.events(),
            "client.py": self.client(),
            "py.typed": "",
        }


_JSON_WORDS = {"string": "a string", "number": "a number", "int": "an integer",
               "boolean": "a boolean", "null": "null", "object": "an object",
               "array": "an array"}
_JSON_PY = {"string": "str", "boolean": "bool", "object": "dict", "array": "list"}


def generate(schema_files: Sequence[str]) -> dict[str, str]:
    """The client package for ``schema_files``: file name -> text.

    :raise QAPIError: if a schema is invalid.
    :raise GeneratorError: if names cannot be told apart in Python.
    """
    return _Generator([Schema(fname) for fname in schema_files]).files()


def write_package(files: dict[str, str], outdir: Path) -> None:
    """Write ``files`` into ``outdir`` (created if needed), removing ``.py`` files a
    previous generation left there that this one does not write."""
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*.py"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (outdir / name).write_text(text)

"""A readable Markdown reference of a schema, for people and ``contrib/`` tools.

The reference lists commands (arguments, return type), events, and the
named types, each with the text of its doc comment: overview, member
descriptions, features, conditions and tagged sections such as ``Since:``.
Implicit types (arrays, anonymous argument objects, built-ins) get no entry
of their own; they are described where they are used.
"""

from __future__ import annotations

from .parser import DocBlock, DocSection
from .schema import (
    AlternateType,
    ArrayType,
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

__all__ = ["TextDumpVisitor", "dump_text"]


def _type_ref(typ: Type) -> str:
    """How a type is written in the reference."""
    if isinstance(typ, ArrayType):
        return f"array of {_type_ref(typ.element_type)}"
    return f"`{typ.name}`"


def _doc_text(doc: DocBlock | None, name: str) -> str:
    if doc is None:
        return ""
    section = doc.args.get(name)
    return section.text if section else ""


def _feature_text(doc: DocBlock | None, name: str) -> str:
    if doc is None:
        return ""
    section = doc.features.get(name)
    return section.text if section else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _qualifiers(ifcond: IfCond, features: list[Feature]) -> str:
    parts: list[str] = []
    if features:
        parts.append("features: " + ", ".join(f.name for f in features))
    if ifcond.is_present():
        parts.append(f"if {ifcond}")
    return f" ({'; '.join(parts)})" if parts else ""


class TextDumpVisitor(Visitor):
    """Collect a Markdown reference; read :attr:`text` after visiting."""

    def __init__(self, title: str = "QAPI schema reference") -> None:
        self._title = title
        self._commands: list[str] = []
        self._events: list[str] = []
        self._types: list[str] = []
        self.text = ""

    def visit_begin(self, schema: Schema) -> None:
        self._commands, self._events, self._types = [], [], []

    def visit_end(self) -> None:
        out = [f"# {self._title}\n"]
        for heading, chunks in (
            ("Commands", self._commands),
            ("Events", self._events),
            ("Types", self._types),
        ):
            if chunks:
                out.append(f"## {heading}\n")
                out.extend(chunks)
        self.text = "\n".join(out)

    def visit_needed(self, entity: Entity) -> bool:
        return not entity.is_implicit()

    # Section: entities

    def visit_command(self, command: Command) -> None:
        lines = self._head(command, command.name)
        lines += self._arguments(command.arg_type, command.boxed, command.doc)
        if command.ret_type is not None:
            returns = f"**Returns:** {_type_ref(command.ret_type)}"
        else:
            returns = "**Returns:** nothing (an empty object)"
        section = command.doc.section("Returns") if command.doc else None
        if section is not None:
            returns += f" — {_one_line(section.text)}"
        lines += [returns, ""]
        flags = [
            label
            for label, on in (
                ("out-of-band capable", command.allow_oob),
                ("allowed in preconfig state", command.allow_preconfig),
                ("no success response", not command.success_response),
            )
            if on
        ]
        if flags:
            lines += ["**Flags:** " + ", ".join(flags), ""]
        lines += self._tail(command)
        self._commands.append("\n".join(lines))

    def visit_event(self, event: Event) -> None:
        lines = self._head(event, event.name)
        lines += self._arguments(event.arg_type, event.boxed, event.doc, what="Data")
        lines += self._tail(event)
        self._events.append("\n".join(lines))

    def visit_enum_type(self, typ: EnumType) -> None:
        lines = self._head(typ, f"{typ.name} (enum)")
        lines.append("**Values:**")
        for m in typ.members:
            desc = _one_line(_doc_text(typ.doc, m.name))
            lines.append(
                f"- `{m.name}`{_qualifiers(m.ifcond, m.features)}" + (f": {desc}" if desc else "")
            )
        lines.append("")
        lines += self._tail(typ)
        self._types.append("\n".join(lines))

    def visit_object_type(self, typ: ObjectType) -> None:
        lines = self._head(typ, f"{typ.name} ({typ.meta})")
        if typ.base is not None and not typ.base.is_implicit():
            lines += [f"**Base:** `{typ.base.name}`", ""]
        if typ.members:
            lines.append("**Members:**")
            lines += [self._member_line(m, typ.doc) for m in typ.members]
            lines.append("")
        if typ.variants is not None:
            tag = typ.variants.tag_member.name
            lines.append(f"**Branches** (selected by `{tag}`):")
            for v in typ.variants.variants:
                target = "no additional members" if v.type.name == "q_empty" else _type_ref(v.type)
                lines.append(f"- `{v.name}`{_qualifiers(v.ifcond, [])}: {target}")
            lines.append("")
        lines += self._tail(typ)
        self._types.append("\n".join(lines))

    def visit_alternate_type(self, typ: AlternateType) -> None:
        lines = self._head(typ, f"{typ.name} (alternate)")
        lines.append("**One of:**")
        for v in typ.variants.variants:
            desc = _one_line(_doc_text(typ.doc, v.name))
            lines.append(
                f"- `{v.name}`: {_type_ref(v.type)}{_qualifiers(v.ifcond, [])}"
                + (f" — {desc}" if desc else "")
            )
        lines.append("")
        lines += self._tail(typ)
        self._types.append("\n".join(lines))

    # Section: pieces

    @staticmethod
    def _head(entity: Entity, title: str) -> list[str]:
        lines = [f"### {title}", ""]
        if entity.doc is not None and entity.doc.body.text:
            lines += [entity.doc.body.text, ""]
        return lines

    @staticmethod
    def _member_line(m: Member, doc: DocBlock | None) -> str:
        optional = ", optional" if m.optional else ""
        desc = _one_line(_doc_text(doc, m.name))
        return f"- `{m.name}`: {_type_ref(m.type)}{optional}{_qualifiers(m.ifcond, m.features)}" + (
            f" — {desc}" if desc else ""
        )

    def _arguments(
        self,
        arg_type: ObjectType | None,
        boxed: bool,
        doc: DocBlock | None,
        what: str = "Arguments",
    ) -> list[str]:
        if arg_type is None:
            return [f"**{what}:** none", ""]
        if not arg_type.is_implicit():
            how = " (boxed)" if boxed else ""
            return [f"**{what}:** the members of `{arg_type.name}`{how}", ""]
        lines = [f"**{what}:**"]
        lines += [self._member_line(m, doc) for m in arg_type.members]
        lines.append("")
        return lines

    @staticmethod
    def _tail(entity: Entity) -> list[str]:
        lines: list[str] = []
        doc = entity.doc
        if entity.features:
            lines.append("**Features:**")
            for f in entity.features:
                desc = _one_line(_feature_text(doc, f.name))
                lines.append(
                    f"- `{f.name}`{_qualifiers(f.ifcond, [])}" + (f": {desc}" if desc else "")
                )
            lines.append("")
        if entity.ifcond.is_present():
            lines += [f"**Available if:** {entity.ifcond}", ""]
        if doc is not None:
            for section in doc.sections:
                lines += _render_section(section)
        return lines


def _render_section(section: DocSection) -> list[str]:
    if section.name == "Returns":
        return []  # shown with the return type
    if section.name is None:
        return [section.text, ""]
    if section.name.startswith("Example"):
        return [f"**{section.name}:**", "", "```", section.text, "```", ""]
    if section.name == "Since":
        return [f"*Since: {_one_line(section.text)}*", ""]
    return [f"**{section.name}:** {section.text}", ""]


def dump_text(schema: Schema, title: str | None = None) -> str:
    """The Markdown reference for *schema*."""
    visitor = TextDumpVisitor(title or f"QAPI schema reference: {schema.fname}")
    schema.visit(visitor)
    return visitor.text

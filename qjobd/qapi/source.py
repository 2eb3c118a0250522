"""Source locations for schema diagnostics.

Every diagnostic the front end emits must point the schema author at a file
and line, and, because schema files include each other, at the chain of
``include`` directives that led there.  Once an expression has been
identified as a definition, the location also remembers *which* definition
it belongs to so that messages can be rendered the way C compilers do::

    In file included from qapi-schema.json:12:
    block-core.json: In struct 'BlockInfo':
    block-core.json:42: member 'speed' uses unknown type 'Int'

The :class:`Pragma` settings live here too: a pragma is a property of the
source being read (it changes how later definitions are checked), and every
location produced while reading one schema shares the same settings object.
"""

from __future__ import annotations

import attrs

__all__ = ["Pragma", "SourceInfo"]


@attrs.define
class Pragma:
    """Schema-wide settings changed by ``{ 'pragma': {...} }`` directives.

    One instance is shared by every :class:`SourceInfo` created while reading
    a schema (including the files it includes), so a pragma anywhere applies
    to the whole schema, as it does in QEMU.
    """

    #: Every definition must carry a documentation comment.
    doc_required: bool = False
    #: Commands whose names may contain ``_``.
    command_name_exceptions: list[str] = attrs.field(factory=list)
    #: Commands that may return something other than an object (or a list
    #: of objects).
    command_returns_exceptions: list[str] = attrs.field(factory=list)
    #: Types whose member names may use upper case and ``_``.
    member_name_exceptions: list[str] = attrs.field(factory=list)


class SourceInfo:
    """A position in a schema file, plus how we got there.

    :ivar fname: the file name as it was opened (relative to the including
        file's directory, joined onto it).
    :ivar line: 1-based line number.
    :ivar parent: location of the ``include`` directive that pulled this file
        in, or ``None`` for the top-level schema file.
    :ivar pragma: the schema-wide :class:`Pragma` settings.
    :ivar defn_meta: the kind of definition being checked (``'struct'``,
        ``'command'`` ...) once known, else ``None``.
    :ivar defn_name: the name of that definition, else ``None``.
    """

    __slots__ = ("defn_meta", "defn_name", "fname", "line", "parent", "pragma")

    def __init__(
        self,
        fname: str,
        line: int = 1,
        parent: SourceInfo | None = None,
        pragma: Pragma | None = None,
    ) -> None:
        self.fname = fname
        self.line = line
        self.parent = parent
        if pragma is None:
            pragma = parent.pragma if parent is not None else Pragma()
        self.pragma: Pragma = pragma
        self.defn_meta: str | None = None
        self.defn_name: str | None = None

    def at_line(self, line: int) -> SourceInfo:
        """Return a fresh location in the same file at *line*."""
        return SourceInfo(self.fname, line, self.parent, self.pragma)

    def set_defn(self, meta: str, name: str) -> None:
        """Record that this location starts the definition *meta* *name*."""
        self.defn_meta = meta
        self.defn_name = name

    def loc(self) -> str:
        """``file:line``, the location proper."""
        return f"{self.fname}:{self.line}"

    def include_path(self) -> str:
        """One "In file included from" line per enclosing include."""
        lines: list[str] = []
        parent = self.parent
        while parent is not None:
            lines.append(f"In file included from {parent.loc()}:\n")
            parent = parent.parent
        return "".join(reversed(lines))

    def in_defn(self) -> str:
        """A "file: In struct 'Foo':" line when inside a definition."""
        if self.defn_name is None:
            return ""
        return f"{self.fname}: In {self.defn_meta} '{self.defn_name}':\n"

    def __str__(self) -> str:
        return self.include_path() + self.in_defn() + self.loc()

    def __repr__(self) -> str:
        return f"<SourceInfo {self.loc()}>"

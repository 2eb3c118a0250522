"""Reader for QAPI schema files: lexer, parser and doc-comment parser.

The schema language is a JSON dialect: strings use single quotes (the only
escape is a doubled backslash, and only printable ASCII is allowed), there
are no numbers or ``null``, and ``#`` starts a comment.  A comment block that
starts and ends with a ``##`` line is a *documentation comment*; it documents
the definition that follows it (or is free-form text).

This module turns files into a flat list of top-level expressions in reading
order, follows ``include`` directives (relative to the including file, each
file read once, loops rejected) and applies ``pragma`` directives.  It does
not know what a struct or a command is: :mod:`qjobd.qapi.expr` checks the
shape of the expressions, :mod:`qjobd.qapi.schema` their meaning.

Errors carry the exact line and column of the offending token, because a
schema author fixing a missing comma needs to see where it is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Protocol

import attrs

from .error import QAPIError, QAPIParseError, QAPISemError
from .source import Pragma, SourceInfo

__all__ = [
    "DocBlock",
    "DocSection",
    "JSONValue",
    "ParsedExpr",
    "SchemaParser",
]

#: What the parser produces for a value: the schema language has only
#: strings, booleans, arrays and objects.
JSONValue = str | bool | list["JSONValue"] | dict[str, "JSONValue"]


@attrs.define
class ParsedExpr:
    """A top-level expression, where it starts, and its doc comment."""

    expr: dict[str, JSONValue]
    info: SourceInfo
    doc: DocBlock | None = None


# Section: documentation comments


class _Documentable(Protocol):
    """Anything a doc comment can describe: a member, value or feature."""

    @property
    def name(self) -> str: ...

    @property
    def info(self) -> SourceInfo | None: ...


class DocSection:
    """One part of a doc comment: the body, an ``@name:`` or a tagged part.

    :ivar name: ``None`` for the body and untagged trailing paragraphs, the
        member/feature name for ``@name:`` sections, the tag without colon
        (``'Since'``, ``'Returns'`` ...) for tagged sections.
    :ivar text: the text with the comment markers and the section's
        indentation removed; stripped of leading/trailing blank lines once
        the section is complete.
    :ivar member: for ``@name:`` sections, the schema member or feature it
        was matched with while checking the schema (``None`` if it names
        nothing, which is an error, or before checking).
    """

    __slots__ = ("indent", "member", "name", "text")

    def __init__(self, name: str | None = None, indent: int = 0) -> None:
        self.name = name
        self.text = ""
        self.indent = indent
        self.member: _Documentable | None = None

    def __repr__(self) -> str:
        return f"<DocSection {self.name!r}: {self.text[:30]!r}>"


class DocBlock:
    """A parsed documentation comment.

    A *definition* doc comment starts with ``@SYMBOL:`` and is attached to the
    definition of SYMBOL that must follow it; anything else is *free-form*
    documentation (headings, prose).

    :ivar info: where the comment starts.
    :ivar symbol: the documented definition's name, or ``None`` (free-form).
    :ivar body: the overview text.
    :ivar args: ``@member:`` descriptions by name, in the order documented;
        members the comment does not mention are added (with empty text)
        while the schema is checked.
    :ivar features: feature descriptions (after a ``Features:`` line).
    :ivar sections: tagged (``Since:``, ``Returns:``, ``Note:`` ...) and
        untagged trailing sections, in order.
    """

    def __init__(self, info: SourceInfo) -> None:
        self.info = info
        self.symbol: str | None = None
        self.body = DocSection()
        self.args: dict[str, DocSection] = {}
        self.features: dict[str, DocSection] = {}
        self.sections: list[DocSection] = []

    def has_section(self, name: str) -> bool:
        """Is there a tagged section *name* (e.g. ``'Returns'``)?"""
        return any(s.name == name for s in self.sections)

    def section(self, name: str) -> DocSection | None:
        """The first tagged section called *name*, if any."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def connect_member(self, member: _Documentable) -> None:
        """Match a member, enum value or branch with its description."""
        sec = self.args.get(member.name)
        if sec is None:
            # Undocumented members are tolerated (QEMU has many).
            sec = self.args[member.name] = DocSection(member.name)
        sec.member = member

    def connect_feature(self, feature: _Documentable) -> None:
        """Match a feature with its description; features must be documented."""
        sec = self.features.get(feature.name)
        if sec is None:
            raise QAPISemError(
                feature.info or self.info,
                f"feature '{feature.name}' lacks documentation; describe it in "
                f"the doc comment's 'Features:' part",
            )
        sec.member = feature

    def check_expr(self, meta: str) -> None:
        """Checks that only need to know what kind of definition follows."""
        if self.has_section("Returns") and meta != "command":
            raise QAPISemError(self.info, "a 'Returns:' section makes sense only for commands")

    def check(self) -> None:
        """After connecting: every ``@name:`` must describe something real."""
        for table, what in ((self.args, "member"), (self.features, "feature")):
            bogus = [name for name, sec in table.items() if sec.member is None]
            if bogus:
                names = "', '".join(bogus)
                if len(bogus) == 1:
                    msg = f"documented {what} '{names}' does not exist"
                else:
                    msg = f"documented {what}s '{names}' do not exist"
                raise QAPISemError(self.info, msg)

    def __repr__(self) -> str:
        return f"<DocBlock {self.symbol or '(free-form)'} at {self.info.loc()}>"


_SECTION_TAGS = frozenset(
    ("Returns:", "Since:", "Note:", "Notes:", "Example:", "Examples:", "TODO:")
)
_UNIQUE_SECTIONS = ("Returns", "Since")
_ARG_HEAD = re.compile(r"@\S*:\s*")
_TAG_HEAD = re.compile(r"\S*:\s*")
_AT_NAME = re.compile(r"(@\S+:)")


class _DocBuilder:
    """State machine turning comment lines into a :class:`DocBlock`.

    A definition comment goes through these parts, in order: the body (the
    ``@SYMBOL:`` line and an overview), ``@member:`` descriptions, a
    ``Features:`` line with ``@feature:`` descriptions, then tagged sections.
    Each mode below handles one line of its part and decides when the next
    part begins.
    """

    def __init__(self, info: SourceInfo, error: Callable[[str], QAPIError]) -> None:
        self.doc = DocBlock(info)
        self._error = error
        self._section: DocSection | None = self.doc.body
        self._handle: Callable[[str], None] = self._body_line

    # entry points

    def append(self, comment: str) -> None:
        """Feed one comment line, including its leading ``#``."""
        line = comment[1:]
        if not line:
            self._add_text("")
            return
        if line[0] != " ":
            raise self._error("doc comment lines must start with '# ' (missing space after #)")
        self._handle(line[1:])

    def finish(self) -> DocBlock:
        """The comment is over: close the last section."""
        self._switch_to(None)
        return self.doc

    # the modes

    def _body_line(self, line: str) -> None:
        doc = self.doc
        word = line.split(" ", 1)[0]
        if doc.symbol is None and not doc.body.text and line.startswith("@"):
            if not line.endswith(":"):
                raise self._error("the line naming the documented definition must end with ':'")
            doc.symbol = line[1:-1]
            if not doc.symbol:
                raise self._error("a definition name is required after '@'")
        elif doc.symbol is not None:
            if word.startswith("@") and word.endswith(":"):
                self._handle = self._args_line
                self._args_line(line)
            elif line == "Features:":
                self._handle = self._features_line
            elif word in _SECTION_TAGS:
                self._handle = self._tagged_line
                self._tagged_line(line)
            else:
                self._add_text(line)
        else:
            self._add_text(line)

    def _args_line(self, line: str) -> None:
        self._symbol_line(line, self.doc.args, allow_features=True)

    def _features_line(self, line: str) -> None:
        self._symbol_line(line, self.doc.features, allow_features=False)

    def _symbol_line(
        self, line: str, table: dict[str, DocSection], *, allow_features: bool
    ) -> None:
        word = line.split(" ", 1)[0]
        if word.startswith("@") and word.endswith(":"):
            line, indent = self._strip_head(_ARG_HEAD, line)
            self._start_symbol_section(table, word[1:-1], indent)
        elif word in _SECTION_TAGS:
            self._handle = self._tagged_line
            self._tagged_line(line)
            return
        elif self._after_blank_line() and line and not line[0].isspace():
            if allow_features and line == "Features:":
                self._handle = self._features_line
            else:
                # An unindented paragraph after the descriptions: untagged
                # trailing section.
                self._start_section(None)
                self._handle = self._tagged_line
                self._tagged_line(line)
            return
        self._add_text(line)

    def _tagged_line(self, line: str) -> None:
        word = line.split(" ", 1)[0]
        if word.startswith("@") and word.endswith(":"):
            first = self.doc.sections[0].name if self.doc.sections else None
            where = f"the '{first}' section" if first else "a trailing paragraph"
            raise self._error(
                f"'{word}' can't follow {where}: describe members and features "
                f"before any tagged section"
            )
        if word in _SECTION_TAGS:
            line, indent = self._strip_head(_TAG_HEAD, line)
            self._start_section(word[:-1], indent)
        self._add_text(line)

    # helpers

    @staticmethod
    def _strip_head(head: re.Pattern[str], line: str) -> tuple[str, int]:
        """Replace a leading ``@name:``/``Tag:`` by blanks.

        Text may start on the same line as the head; continuation lines must
        then be indented to line up with it, so the head's width becomes the
        section's expected indentation.  A bare head means the text starts on
        the next line, unindented.
        """
        match = head.match(line)
        assert match is not None
        indent = match.end()
        rest = line[indent:]
        if not rest:
            return "", 0
        return " " * indent + rest, indent

    def _after_blank_line(self) -> bool:
        return self._section is not None and self._section.text.endswith("\n\n")

    def _start_symbol_section(self, table: dict[str, DocSection], name: str, indent: int) -> None:
        if not name:
            raise self._error("a member or feature name is required after '@'")
        if name in table:
            raise self._error(f"'{name}' is described twice in this doc comment")
        assert not self.doc.sections
        section = DocSection(name, indent)
        self._switch_to(section)
        table[name] = section

    def _start_section(self, name: str | None, indent: int = 0) -> None:
        if name in _UNIQUE_SECTIONS and self.doc.has_section(name):
            raise self._error(f"only one '{name}:' section is allowed")
        section = DocSection(name, indent)
        self._switch_to(section)
        self.doc.sections.append(section)

    def _switch_to(self, section: DocSection | None) -> None:
        old = self._section
        assert old is not None
        old.text = old.text.strip()
        if old is not self.doc.body and not old.text:
            kind = f"'{old.name}'" if old.name else "(untagged)"
            raise self._error(f"doc section {kind} is empty; add text or remove it")
        self._section = section

    def _add_text(self, line: str) -> None:
        match = _AT_NAME.match(line)
        if match:
            raise self._error(
                f"'{match.group(1)}' is only allowed in the member and feature "
                f"descriptions of a definition's doc comment"
            )
        section = self._section
        assert section is not None
        if line:
            indent = len(line) - len(line.lstrip())
            if indent < section.indent:
                raise self._error(
                    f"unexpected de-indent (this text must be indented by at "
                    f"least {section.indent} spaces)"
                )
            line = line[section.indent :]
        section.text += line.rstrip() + "\n"


# Section: the lexer and parser

# Token kinds (``_tok``): one of the punctuation characters, or
_STRING = "S"
_BOOL = "B"
_COMMENT = "#"

_PUNCT = frozenset("{}:,[]")
_BLANKS = re.compile(r"[^\S\n]+")
# A string without escapes or forbidden characters: printable ASCII except
# quote and backslash.
_SIMPLE_STRING = re.compile(r"'([ -&(-\[\]-~]*)'")
_STRAY = re.compile(r"""[^\[\]{}:,\s'"]+""")


class SchemaParser:
    """Parse one schema file and, recursively, what it includes.

    :param fname: file to read.
    :param included: absolute names of files already read (shared with and
        updated by the parsers of included files).
    :param incl_info: location of the ``include`` directive that led here, or
        ``None`` for the top-level file.
    :param pragma: settings shared by the whole schema.

    :ivar exprs: definitions and ``include`` markers (``{'include': path}``
        with the path joined onto the including file's directory), flattened
        in reading order.
    :ivar docs: all doc comments, in reading order.
    :raise OSError: if *fname* cannot be read.
    :raise QAPIError: if the text is not valid.
    """

    def __init__(
        self,
        fname: str,
        included: set[str] | None = None,
        incl_info: SourceInfo | None = None,
        pragma: Pragma | None = None,
    ) -> None:
        self.fname = fname
        self._included = included if included is not None else set()
        self._included.add(os.path.abspath(fname))
        self._parent = incl_info
        if pragma is None:
            pragma = incl_info.pragma if incl_info is not None else Pragma()
        self.pragma = pragma
        self.exprs: list[ParsedExpr] = []
        self.docs: list[DocBlock] = []

        with open(fname, encoding="utf-8") as fp:
            src = fp.read()
        if not src.endswith("\n"):
            src += "\n"
        self._src = src
        self._cursor = 0  # next character to read
        self._tok: str | None = None  # kind of the current token, None at EOF
        self._val: str | bool | None = None
        self._tok_pos = 0  # where the current token starts
        self._line = 1
        self._line_start = 0
        self._parse()

    # Section: error helpers

    def _here(self) -> SourceInfo:
        return SourceInfo(self.fname, self._line, self._parent, self.pragma)

    def _column(self) -> int:
        col = 1
        for ch in self._src[self._line_start : self._tok_pos]:
            col = ((col - 1) // 8 + 1) * 8 + 1 if ch == "\t" else col + 1
        return col

    def _error(self, msg: str) -> QAPIParseError:
        """An error at the current token."""
        return QAPIParseError(self._here(), msg, self._column())

    # Section: lexer

    def _next(self, keep_comments: bool = False) -> None:
        """Advance to the next token.

        Plain comments are skipped unless *keep_comments*; a comment starting
        with ``##`` always becomes a token, since it opens (or closes) a doc
        comment.  The end of the input is the final newline.
        """
        src = self._src
        while True:
            pos = self._cursor
            ch = src[pos]
            self._tok_pos = pos
            self._val = None
            if ch == "\n":
                if pos + 1 == len(src):
                    self._tok = None
                    return
                self._line += 1
                self._cursor = self._line_start = pos + 1
            elif ch in _PUNCT:
                self._tok = ch
                self._cursor = pos + 1
                return
            elif ch == "'":
                self._lex_string(pos)
                return
            elif ch == "#":
                end = src.index("\n", pos)
                self._cursor = end
                if keep_comments or src.startswith("##", pos):
                    self._tok = _COMMENT
                    self._val = src[pos:end]
                    return
            elif ch.isspace():
                match = _BLANKS.match(src, pos)
                self._cursor = match.end() if match else pos + 1
            elif src.startswith("true", pos):
                self._tok, self._val, self._cursor = _BOOL, True, pos + 4
                return
            elif src.startswith("false", pos):
                self._tok, self._val, self._cursor = _BOOL, False, pos + 5
                return
            else:
                match = _STRAY.match(src, pos)
                junk = match.group(0) if match else ch
                raise self._error(
                    f"stray '{junk}': only quoted strings, true, false and "
                    f"{{ }} [ ] : , may appear here"
                )

    def _lex_string(self, pos: int) -> None:
        src = self._src
        self._tok = _STRING
        match = _SIMPLE_STRING.match(src, pos)
        if match:
            self._val = match.group(1)
            self._cursor = match.end()
            return
        # Slow path: escapes, or an error to report.
        chars: list[str] = []
        i = pos + 1
        while True:
            ch = src[i]
            i += 1
            if ch == "\n":
                raise self._error('string is missing its terminating "\'"')
            if ch == "\\":
                ch = src[i]
                i += 1
                if ch == "\n":
                    raise self._error('string is missing its terminating "\'"')
                if ch != "\\":
                    raise self._error(
                        f"unknown escape \\{ch}: the only escape is \\\\ (a backslash)"
                    )
            elif ch == "'":
                break
            if not " " <= ch <= "~":
                raise self._error("funny character in string: only printable ASCII is allowed")
            chars.append(ch)
        self._val = "".join(chars)
        self._cursor = i

    # Section: parser

    def _parse(self) -> None:
        cur_doc: DocBlock | None = None
        self._next()
        while self._tok is not None:
            info = self._here()
            if self._tok == _COMMENT:
                self._reject_pending_doc(cur_doc)
                for doc in self._get_doc(info):
                    self.docs.append(doc)
                    cur_doc = doc
                continue

            expr = self._get_expr()
            if not isinstance(expr, dict):
                raise QAPISemError(info, "top-level expressions must be objects ({ ... })")
            if "include" in expr:
                self._reject_pending_doc(cur_doc)
                self._include_directive(expr, info)
            elif "pragma" in expr:
                self._reject_pending_doc(cur_doc)
                self._pragma_directive(expr, info)
            else:
                parsed = ParsedExpr(expr, info)
                if cur_doc is not None:
                    if cur_doc.symbol is None:
                        raise QAPISemError(
                            cur_doc.info,
                            "the doc comment right before a definition must "
                            "start with '@NAME:' naming it",
                        )
                    parsed.doc = cur_doc
                self.exprs.append(parsed)
            cur_doc = None
        self._reject_pending_doc(cur_doc)

    @staticmethod
    def _reject_pending_doc(doc: DocBlock | None) -> None:
        if doc is not None and doc.symbol is not None:
            raise QAPISemError(
                doc.info,
                f"documentation for '{doc.symbol}' must be followed directly by its definition",
            )

    def _get_expr(self) -> JSONValue:
        tok = self._tok
        if tok == "{":
            self._next()
            return self._get_members()
        if tok == "[":
            self._next()
            return self._get_values()
        if tok in (_STRING, _BOOL):
            val = self._val
            assert val is not None
            self._next()
            return val
        raise self._error("expected '{', '[', string, or boolean")

    def _get_members(self) -> dict[str, JSONValue]:
        members: dict[str, JSONValue] = {}
        if self._tok == "}":
            self._next()
            return members
        if self._tok != _STRING:
            raise self._error("expected string or '}'")
        while True:
            key = self._val
            assert isinstance(key, str)
            self._next()
            if self._tok != ":":
                raise self._error("expected ':'")
            self._next()
            if key in members:
                raise self._error(f"duplicate key '{key}'")
            members[key] = self._get_expr()
            if self._tok == "}":
                self._next()
                return members
            if self._tok != ",":
                raise self._error("expected ',' or '}'")
            self._next()
            if self._tok != _STRING:
                raise self._error("expected string (a trailing comma is not allowed)")

    def _get_values(self) -> list[JSONValue]:
        values: list[JSONValue] = []
        if self._tok == "]":
            self._next()
            return values
        if self._tok not in ("{", "[", _STRING, _BOOL):
            raise self._error("expected '{', '[', ']', string, or boolean")
        while True:
            values.append(self._get_expr())
            if self._tok == "]":
                self._next()
                return values
            if self._tok != ",":
                raise self._error("expected ',' or ']'")
            self._next()

    def _get_doc(self, info: SourceInfo) -> list[DocBlock]:
        if self._val != "##":
            raise self._error(
                "junk after '##' at start of documentation comment "
                "(the opening line must be just '##')"
            )
        docs: list[DocBlock] = []
        builder = _DocBuilder(info, self._error)
        self._next(keep_comments=True)
        while self._tok == _COMMENT:
            text = self._val
            assert isinstance(text, str)
            if text.startswith("##"):
                if text != "##":
                    raise self._error(
                        "junk after '##' at end of documentation comment "
                        "(the closing line must be just '##')"
                    )
                docs.append(builder.finish())
                self._next()
                return docs
            if text.startswith("# ="):
                if builder.doc.symbol is not None:
                    raise self._error(
                        "unexpected '=' markup in definition documentation: "
                        "headings belong in free-form doc comments"
                    )
                if builder.doc.body.text:
                    # A heading starts a new free-form block.
                    docs.append(builder.finish())
                    builder = _DocBuilder(info, self._error)
            builder.append(text)
            self._next(keep_comments=True)
        raise self._error("documentation comment must end with a '##' line")

    # Section: directives

    def _include_directive(self, expr: dict[str, JSONValue], info: SourceInfo) -> None:
        if len(expr) != 1:
            raise QAPISemError(info, "invalid 'include' directive: it takes no other keys")
        include = expr["include"]
        if not isinstance(include, str):
            raise QAPISemError(info, "value of 'include' must be a string (a file name)")
        incl_fname = os.path.join(os.path.dirname(self.fname), include)
        self.exprs.append(ParsedExpr({"include": incl_fname}, info))

        incl_abs = os.path.abspath(incl_fname)
        where: SourceInfo | None = info
        while where is not None:
            if incl_abs == os.path.abspath(where.fname):
                raise QAPISemError(info, f"inclusion loop for {include}: it is already being read")
            where = where.parent
        if incl_abs in self._included:
            return  # every file is read once
        try:
            sub = SchemaParser(incl_fname, self._included, info, self.pragma)
        except OSError as err:
            raise QAPISemError(
                info, f"can't read include file '{incl_fname}': {err.strerror}"
            ) from err
        except UnicodeDecodeError as err:
            raise QAPISemError(
                info, f"include file '{incl_fname}' is not valid UTF-8: {err}"
            ) from err
        self.exprs.extend(sub.exprs)
        self.docs.extend(sub.docs)

    def _pragma_directive(self, expr: dict[str, JSONValue], info: SourceInfo) -> None:
        if len(expr) != 1:
            raise QAPISemError(info, "invalid 'pragma' directive: it takes no other keys")
        pragma = expr["pragma"]
        if not isinstance(pragma, dict):
            raise QAPISemError(info, "value of 'pragma' must be an object")
        for name, value in pragma.items():
            self._set_pragma(name, value, info)

    def _set_pragma(self, name: str, value: JSONValue, info: SourceInfo) -> None:
        def str_list() -> list[str]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise QAPISemError(info, f"pragma {name} must be a list of strings")
            return [v for v in value if isinstance(v, str)]

        if name == "doc-required":
            if not isinstance(value, bool):
                raise QAPISemError(info, "pragma 'doc-required' must be boolean")
            self.pragma.doc_required = value
        elif name == "command-name-exceptions":
            self.pragma.command_name_exceptions = str_list()
        elif name == "command-returns-exceptions":
            self.pragma.command_returns_exceptions = str_list()
        elif name == "member-name-exceptions":
            self.pragma.member_name_exceptions = str_list()
        else:
            raise QAPISemError(
                info,
                f"unknown pragma '{name}'; known pragmas are 'doc-required', "
                f"'command-name-exceptions', 'command-returns-exceptions', "
                f"'member-name-exceptions'",
            )

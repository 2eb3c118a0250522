"""Exceptions raised by the QAPI schema front end.

Everything the front end rejects is reported through :class:`QAPIError`, so
callers (the daemon at start-up, ``python -m qjobd.qapi``, tests) need to
catch exactly one exception type.  Errors tied to a place in a schema file
carry a :class:`~qjobd.qapi.source.SourceInfo` and render as
``file:line: message`` (``file:line:col: message`` for syntax errors), with
the include chain and enclosing definition printed above, compiler style.
"""

from __future__ import annotations

from .source import SourceInfo

__all__ = ["QAPIError", "QAPIParseError", "QAPISemError", "QAPISourceError"]


class QAPIError(Exception):
    """Root of all schema front-end errors."""


class QAPISourceError(QAPIError):
    """An error located in a schema file.

    :param info: where the problem is.
    :param msg: what is wrong, and preferably how to fix it.  May span
        several lines (e.g. a list of valid keys).
    :param col: 1-based column, for lexical and syntax errors.
    """

    def __init__(self, info: SourceInfo, msg: str, col: int | None = None) -> None:
        super().__init__(msg)
        self.info = info
        self.msg = msg
        self.col = col

    def location(self) -> str:
        """``file:line`` or ``file:line:col`` without any context lines."""
        loc = self.info.loc()
        if self.col is not None:
            loc += f":{self.col}"
        return loc

    def __str__(self) -> str:
        context = self.info.include_path() + self.info.in_defn()
        return f"{context}{self.location()}: {self.msg}"


class QAPIParseError(QAPISourceError):
    """The schema text is not well-formed (lexical, syntax or doc comment)."""


class QAPISemError(QAPISourceError):
    """The schema is well-formed but violates a rule of the QAPI language."""

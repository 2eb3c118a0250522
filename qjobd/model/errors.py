"""Errors raised by the runtime model.

:class:`ArgumentError` is what a client sees: the text QEMU's QObject input visitor
would have produced for the same arguments, reported as QMP error class
``GenericError``.  :class:`ModelError` means the schema cannot be turned into Python
types (a programming error in the bundled schema, raised at start-up).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ArgumentError", "ModelError"]


class ArgumentError(Exception):
    """Arguments (or any input value) rejected while structuring.

    :param desc: the exact ``desc`` of the QMP error reply.
    """

    #: The QMP error class of every argument error.
    error_class: Final = "GenericError"

    def __init__(self, desc: str) -> None:
        super().__init__(desc)
        self.desc = desc

    def __repr__(self) -> str:
        return f"ArgumentError({self.desc!r})"


class ModelError(Exception):
    """The schema cannot be represented (e.g. two members map to one Python name)."""

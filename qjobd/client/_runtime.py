# Copied by qjobd-gen-client from qjobd/clientgen/runtime.py; do not edit.
"""JSON checks shared by every generated client (copied into it as ``_runtime.py``).

A generated client decodes replies and events by walking the JSON the daemon sent
with the schema's types; these helpers are the leaves of that walk.  Each one checks
the kind of JSON value it is given and raises :class:`DecodeError`, naming where in
the message the value was, when the daemon sent something the schema does not allow.
Members the schema does not know are ignored, so a client keeps working against a
newer daemon that added optional members (QMP's extensions are additive).

``None`` always means "absent" in a generated client; JSON ``null``, where a schema
allows it as a value (the ``null`` type, alternates such as ``BlockdevRefOrNull``),
is :data:`NULL`, so that an optional member that may be null keeps both meanings.

This module uses the standard library only: it is copied verbatim.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = [
    "NULL",
    "DecodeError",
    "Null",
    "as_bool",
    "as_enum",
    "as_float",
    "as_int",
    "as_list",
    "as_null",
    "as_object",
    "as_str",
    "member",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


class DecodeError(ValueError):
    """A reply or event whose shape the schema does not allow."""


class Null(enum.Enum):
    """The type of :data:`NULL`, JSON ``null`` as a value."""

    NULL = "null"


#: JSON ``null`` where the schema allows it as a value (``None`` means "absent").
NULL = Null.NULL

_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
    (list, "an array"), (dict, "an object"),
)


def kind(value: object) -> str:
    """How a JSON value is described in a :class:`DecodeError`."""
    if value is None:
        return "null"
    for python_type, word in _KINDS:
        if isinstance(value, python_type):
            return word
    return type(value).__name__


def _wrong(value: object, expected: str, where: str) -> DecodeError:
    return DecodeError(f"{where}: expected {expected}, got {kind(value)}")


def as_object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _wrong(value, "an object", where)
    return value


def member(obj: Mapping[str, object], name: str, where: str) -> object:
    """The required member ``name`` of ``obj``."""
    try:
        return obj[name]
    except KeyError:
        raise DecodeError(f"{where}: member '{name}' is missing") from None


def as_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _wrong(value, "a string", where)
    return value


def as_int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(value, "an integer", where)
    return value


def as_float(value: object, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _wrong(value, "a number", where)
    return float(value)


def as_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(value, "a boolean", where)
    return value


def as_null(value: object, where: str) -> Null:
    if value is not None:
        raise _wrong(value, "null", where)
    return NULL


def as_list(value: object, item: Callable[[object], T], where: str) -> list[T]:
    if not isinstance(value, list):
        raise _wrong(value, "an array", where)
    return [item(element) for element in value]


def as_enum(cls: type[E], value: object, where: str) -> E:
    text = as_str(value, where)
    try:
        return cls(text)
    except ValueError:
        raise DecodeError(f"{where}: '{text}' is not a value of {cls.__name__}") from None

"""JSON output that is byte-for-byte what QEMU writes (qobject_to_json).

The monitor's replies and events and the block layer's ``json:{...}`` filenames
come out of the same writer in QEMU, so they share this one here.

QEMU builds every reply and event as a QDict, a hash table of 512 buckets, and prints
it by walking the buckets in order; within one bucket the most recently inserted key
comes first.  Clients never depend on key order, but people diff transcripts and the
project promises that a client cannot tell qjobd from qemu-storage-daemon, so we
reproduce that order.  Everything else follows QEMU's JSON writer: ``", "`` and
``": "`` separators, ``\\uXXXX`` escapes with upper-case hex for anything outside
printable ASCII, and ``%.17g`` for floating-point numbers.

The hot path (small replies of ASCII strings and integers) costs one walk to reorder
dictionaries, with the order of each distinct key tuple computed once, plus one call
to the C JSON encoder.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from qjobd.qdict import iteration_order

__all__ = ["encode", "qdict_order"]

_order_cache: dict[tuple[str, ...], tuple[str, ...] | None] = {}


def qdict_order(keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """The order QEMU prints ``keys`` in, given that order of insertion.

    Returns None when the insertion order already is the printing order, so callers
    can skip rebuilding the dictionary.
    """
    try:
        return _order_cache[keys]
    except KeyError:
        pass
    order = tuple(iteration_order(keys))
    result = None if order == keys else order
    if len(_order_cache) < 65536:
        _order_cache[keys] = result
    return result


class _NeedsSlowPath(Exception):
    """Raised while reordering when a value needs QEMU's float formatting."""


def _reorder(value: Any) -> Any:
    if type(value) is dict:
        keys = tuple(value)
        order = qdict_order(keys)
        if order is None:
            return {k: _reorder(v) for k, v in value.items()}
        return {k: _reorder(value[k]) for k in order}
    if type(value) is list or type(value) is tuple:
        return [_reorder(v) for v in value]
    if type(value) is float:
        raise _NeedsSlowPath
    return value


# Anything json.dumps(ensure_ascii=False) leaves that QEMU would print differently:
# an escaped backslash (kept as is), a lower-case \u escape, or a raw character
# outside printable ASCII.
_FIXUP = re.compile(r"(\\\\)|\\u([0-9a-f]{4})|([^\x20-\x7e])")


def _fixup(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1)
    if match.group(2):
        return "\\u" + match.group(2).upper()
    return _escape_char(match.group(3))


def _escape_char(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "nan" if math.copysign(1.0, value) > 0 else "-nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.17g}"


def _slow_encode(value: Any) -> str:
    """Pure-Python writer for the rare values the fast path cannot express."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, str):
        return _finish(_ENCODER.encode(value))
    if isinstance(value, dict):
        keys = tuple(value)
        order = qdict_order(keys) or keys
        inner = ", ".join(f"{_slow_encode(k)}: {_slow_encode(value[k])}" for k in order)
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_slow_encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as QMP JSON")


# One encoder for every message: json.dumps builds a new one per call whenever an
# option differs from its defaults, which costs as much as encoding a small reply.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _finish(text: str) -> str:
    if text.isascii() and "\\u" not in text and "\x7f" not in text:
        return text
    return _FIXUP.sub(_fixup, text)


def encode(value: Any) -> str:
    """Serialize ``value`` exactly as QEMU's monitor would (without the line end)."""
    try:
        ordered = _reorder(value)
    except _NeedsSlowPath:
        return _slow_encode(value)
    return _finish(_ENCODER.encode(ordered))

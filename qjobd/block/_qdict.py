"""QEMU's JSON rendering of option dicts, for "json:{...}" filenames.

A node whose options cannot be expressed as a plain filename is shown as ``json:``
followed by ``qobject_to_json`` of its QDict.  A QDict iterates over 512 buckets chosen
by the tdb hash of the key, newest entry first within a bucket, so the key order a
client sees is that order and not the insertion order; it is reproduced here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

_U32 = 0xFFFFFFFF
_BUCKETS = 512


def _bucket(key: str) -> int:
    raw = key.encode("utf-8", "surrogatepass")
    value = (0x238F13AF * len(raw)) & _U32
    for index, byte in enumerate(raw):
        value = (value + (byte << (index * 5 % 24))) & _U32
    return ((1103515243 * value + 12345) & _U32) % _BUCKETS


def qdict_order(keys: Sequence[str]) -> list[str]:
    """Iteration order of a QDict whose keys were inserted in ``keys`` order."""
    ranked = sorted(range(len(keys)), key=lambda i: (_bucket(keys[i]), -i))
    return [keys[i] for i in ranked]


def qobject_to_json(value: Any) -> str:
    """Compact QEMU JSON (``", "`` and ``": "`` separators, QDict key order)."""
    if isinstance(value, dict):
        items = (f"{json.dumps(key)}: {qobject_to_json(value[key])}"
                 for key in qdict_order(list(value)))
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(qobject_to_json(item) for item in value) + "]"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return json.dumps(value)

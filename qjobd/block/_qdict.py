"""QEMU's JSON rendering of option dicts, for "json:{...}" filenames.

A node whose options cannot be expressed as a plain filename is shown as ``json:``
followed by ``qobject_to_json`` of its QDict.  A QDict iterates over 512 buckets chosen
by the tdb hash of the key, newest entry first within a bucket, so the key order a
client sees is that order and not the insertion order; it is reproduced here.
"""

from __future__ import annotations

import json
from typing import Any

from qjobd.qdict import iteration_order


def qobject_to_json(value: Any) -> str:
    """Compact QEMU JSON (``", "`` and ``": "`` separators, QDict key order)."""
    if isinstance(value, dict):
        items = (f"{json.dumps(key)}: {qobject_to_json(value[key])}"
                 for key in iteration_order(list(value)))
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

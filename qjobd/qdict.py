"""The order in which QEMU walks a QDict, which decides key order on the wire.

QEMU keeps JSON objects as QDicts: hash tables of 512 buckets indexed by the tdb
string hash, where each bucket lists its newest entry first.  Walking one (to print
it, or to check a request's members) therefore visits keys by bucket, and within a
bucket from newest to oldest — not in the order they were written.  Replies, events,
``json:{...}`` filenames and the choice of which bad member an error names all follow
that walk, so protocol, block and model code share this one definition.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BUCKETS", "bucket", "iteration_order"]

#: Number of hash buckets in a QDict (QDICT_BUCKET_MAX).
BUCKETS = 512

_U32 = 0xFFFFFFFF


def bucket(key: str) -> int:
    """The bucket QEMU files ``key`` under (the gdbm/tdb hash of its UTF-8 bytes)."""
    raw = key.encode("utf-8", "surrogatepass")
    value = (0x238F13AF * len(raw)) & _U32
    for index, byte in enumerate(raw):
        value = (value + (byte << (index * 5 % 24))) & _U32
    return ((1103515243 * value + 12345) & _U32) % BUCKETS


def iteration_order(keys: Sequence[str]) -> list[str]:
    """The walking order of a QDict whose keys were inserted in ``keys`` order."""
    ranked = sorted(range(len(keys)), key=lambda i: (bucket(keys[i]), -i))
    return [keys[i] for i in ranked]

"""Which unexpected key QEMU names first when an object has several.

When QEMU's input visitor starts a struct it copies the keys of the JSON object into a
GLib ``GHashTable`` (a set of the keys not visited yet), deletes each key as the
matching member is visited, and when all members are done reports the first key left
in the table's iteration order: ``Parameter 'k' is unexpected``.  A client that sends
two unexpected keys therefore sees whichever one GLib's open-addressing table happens
to hold in its lowest slot, which depends on

* the order in which the keys were inserted, which is the iteration order of QEMU's
  ``QDict`` (512 buckets hashed with the tdb hash, newest entry first in a bucket);
* GLib's string hash, its probing and growth/shrink policy (the table is resized while
  keys are inserted and while visited keys are removed);
* the order in which visited keys were removed (member visiting order).

This module replays all of that in pure Python.  It runs only on the error path and
only when there are at least two leftover keys; with one leftover key the answer is
obvious.  The behaviour modelled is GLib 2.74 (the ``(hash * 11) % mod`` bucket
selection dates from GLib 2.60) and QEMU 7.2's ``qobject/qdict.c``.  The tests
compare it against recorded qemu-storage-daemon replies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qjobd.qdict import iteration_order

__all__ = ["first_unexpected", "qdict_iteration_order"]

_U32 = 0xFFFFFFFF
_MIN_SHIFT = 3

# GLib's table of primes, one per power-of-two table size (index = log2(size)).
_PRIME_MOD = (
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749,
    65521, 131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213,
    33554393, 67108859, 134217689, 268435399, 536870909, 1073741789, 2147483647,
)  # fmt: skip

_UNUSED = 0
_TOMBSTONE = 1


def _utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


#: The order ``qdict_first``/``qdict_next`` walk a QDict built from keys inserted in
#: the given order (the order of the JSON text).
qdict_iteration_order = iteration_order


def _str_hash(raw: bytes) -> int:
    # g_str_hash walks the string as *signed* chars.
    h = 5381
    for byte in raw:
        if byte >= 0x80:
            byte -= 0x100
        h = (h * 33 + byte) & _U32
    return h


class _GHashSet:
    """Just enough of GLib's GHashTable to know where each key ends up."""

    def __init__(self) -> None:
        self._set_shift(_MIN_SHIFT)
        self.hashes = [_UNUSED] * self.size
        self.keys: list[bytes | None] = [None] * self.size
        self.nnodes = 0
        self.noccupied = 0

    def _set_shift(self, shift: int) -> None:
        self.size = 1 << shift
        self.mod = _PRIME_MOD[shift]
        self.mask = self.size - 1

    def _index(self, hash_value: int) -> int:
        return ((hash_value * 11) & _U32) % self.mod

    def _lookup(self, key: bytes) -> tuple[int, int]:
        hash_value = _str_hash(key)
        if hash_value < 2:
            hash_value = 2
        index = self._index(hash_value)
        first_tombstone = -1
        step = 0
        node_hash = self.hashes[index]
        while node_hash != _UNUSED:
            if node_hash == hash_value and self.keys[index] == key:
                return index, hash_value
            if node_hash == _TOMBSTONE and first_tombstone < 0:
                first_tombstone = index
            step += 1
            index = (index + step) & self.mask
            node_hash = self.hashes[index]
        if first_tombstone >= 0:
            return first_tombstone, hash_value
        return index, hash_value

    def insert(self, key: bytes) -> None:
        index, hash_value = self._lookup(key)
        old = self.hashes[index]
        if old >= 2:
            return  # already present (QDict keys are unique, so never happens)
        self.hashes[index] = hash_value
        self.keys[index] = key
        self.nnodes += 1
        if old == _UNUSED:
            self.noccupied += 1
            self._maybe_resize()

    def remove(self, key: bytes) -> None:
        index, _ = self._lookup(key)
        if self.hashes[index] < 2:
            return
        self.hashes[index] = _TOMBSTONE
        self.keys[index] = None
        self.nnodes -= 1
        self._maybe_resize()

    def _maybe_resize(self) -> None:
        size = self.size
        noccupied = self.noccupied
        if (size > self.nnodes * 4 and size > 1 << _MIN_SHIFT) or (
            size <= noccupied + noccupied // 16
        ):
            self._resize()

    def _resize(self) -> None:
        old_size = self.size
        wanted = int(self.nnodes * 1.333)
        shift = max(wanted.bit_length(), _MIN_SHIFT)
        self._set_shift(shift)
        if self.size > old_size:
            grow = self.size - old_size
            self.hashes.extend([_UNUSED] * grow)
            self.keys.extend([None] * grow)
        moved = [False] * max(self.size, old_size)
        hashes = self.hashes
        keys = self.keys
        for i in range(old_size):
            node_hash = hashes[i]
            if node_hash < 2:
                hashes[i] = _UNUSED
                continue
            if moved[i]:
                continue
            hashes[i] = _UNUSED
            key = keys[i]
            keys[i] = None
            while True:
                index = self._index(node_hash)
                step = 0
                while moved[index]:
                    step += 1
                    index = (index + step) & self.mask
                moved[index] = True
                replaced_hash = hashes[index]
                replaced_key = keys[index]
                hashes[index] = node_hash
                keys[index] = key
                if replaced_hash < 2:
                    break
                node_hash = replaced_hash
                key = replaced_key
        if self.size < old_size:
            del hashes[self.size :]
            del keys[self.size :]
        self.noccupied = self.nnodes

    def first(self) -> bytes | None:
        for node_hash, key in zip(self.hashes, self.keys, strict=True):
            if node_hash >= 2:
                return key
        return None


def first_unexpected(keys: Sequence[str], visited: Iterable[str]) -> str | None:
    """The key QEMU's ``check_struct`` reports for a JSON object.

    :param keys: the object's keys in the order they appeared in the JSON text.
    :param visited: the keys consumed by visiting members, in visiting order (names
        that are not keys of the object are ignored).
    :returns: the reported key, or None if every key was visited.
    """
    key_set = set(keys)
    seen = [k for k in visited if k in key_set]
    left = key_set.difference(seen)
    if not left:
        return None
    if len(left) == 1:
        return next(iter(left))
    table = _GHashSet()
    for key in qdict_iteration_order(keys):
        table.insert(_utf8(key))
    for key in dict.fromkeys(seen):
        table.remove(_utf8(key))
    found = table.first()
    assert found is not None
    return found.decode("utf-8", "surrogatepass")

"""Dirty bitmaps: which parts of a node were written since someone last looked.

A job that must follow a node's changes (mirror) attaches a :class:`DirtyBitmap` to
it with :meth:`BlockNode.add_dirty_bitmap`; from then on every write that reaches the
node - through ``pwrite``, ``write_zeroes``, an honoured ``discard``, or behind its
back through ``copy_file_range`` (``mark_written``) - marks the bytes it touched, in
the writer's thread.  As in QEMU the marking happens once the write is over, and a
reader that wants a consistent copy clears the bits *before* it reads: a write that
lands during the copy marks them again, so nothing is lost.

One bit covers ``granularity`` bytes (a power of two), so the bitmap of a 1 TiB node
at the default 64 KiB is 16 MiB of bytes, one per granule - a ``bytearray`` whose
``find`` is the whole search engine.  Every method takes the bitmap's lock, so writers
in worker threads and the job on the event loop can use it at the same time.
Listeners (a job's wake-up call) are called after a change, outside the lock, in the
thread that made it; they must be thread-safe and cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DirtyBitmap", "granularity_valid"]

_SET = b"\x01"
_CLEAR = b"\x00"


def granularity_valid(granularity: int) -> bool:
    """A power of two from 512 bytes to 64 MiB, what QEMU's bitmaps accept."""
    return 512 <= granularity <= 64 << 20 and granularity & (granularity - 1) == 0


class DirtyBitmap:
    """An anonymous, non-persistent bitmap over ``length`` bytes; see the module doc."""

    def __init__(self, length: int, granularity: int = 64 << 10) -> None:
        if not granularity_valid(granularity):
            raise ValueError(f"bad granularity {granularity}")
        self.length = length
        self.granularity = granularity
        self._shift = granularity.bit_length() - 1
        self._bits = bytearray(-(-length // granularity))
        self._dirty = 0  # granules set
        self._lock = threading.Lock()
        #: Disabled bitmaps ignore writes (QEMU's "recording": false).
        self.recording = True
        self._listeners: tuple[Callable[[], None], ...] = ()

    def __repr__(self) -> str:
        return f"<DirtyBitmap {self.count()}/{self.length} dirty, {self.granularity}B>"

    # Section: listeners

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every write that marks something (any thread)."""
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        self._listeners = tuple(entry for entry in self._listeners if entry is not listener)

    # Section: granules

    def _granules(self, offset: int, length: int) -> tuple[int, int]:
        """[first, end) granule indexes covering the byte range, clipped to the bitmap."""
        end = min(offset + length, self.length)
        if length <= 0 or offset >= end:
            return 0, 0
        return offset >> self._shift, -(-end >> self._shift)

    def _fill(self, first: int, end: int, value: bytes) -> int:
        """Set granules [first, end) to ``value``; returns how many changed."""
        bits = self._bits
        before = bits.count(_SET, first, end)
        bits[first:end] = value * (end - first)
        after = (end - first) if value == _SET else 0
        return after - before

    # Section: changes

    def set(self, offset: int, length: int) -> None:
        """Mark ``[offset, offset + length)`` dirty (also when not recording)."""
        first, end = self._granules(offset, length)
        if first == end:
            return
        with self._lock:
            self._dirty += self._fill(first, end, _SET)
        for listener in self._listeners:
            listener()

    def record_write(self, offset: int, length: int) -> None:
        """A write hit the node: mark it, unless the bitmap is disabled."""
        if self.recording:
            self.set(offset, length)

    def clear(self, offset: int = 0, length: int | None = None) -> None:
        """Mark the range clean (everything by default)."""
        first, end = self._granules(offset, self.length if length is None else length)
        if first == end:
            return
        with self._lock:
            self._dirty += self._fill(first, end, _CLEAR)

    def take(self, start: int, limit: int) -> tuple[int, int] | None:
        """Find and clear the next dirty run: the first dirty granule at or after
        ``start`` (wrapping to the beginning), extended over following dirty granules
        up to ``limit`` bytes.  Returns ``(offset, length)`` clipped to the node's
        length, or None when the bitmap is clean.  Clearing happens under the lock,
        before the caller copies, so writes during the copy are not lost.
        """
        with self._lock:
            if not self._dirty:
                return None
            bits = self._bits
            index = bits.find(_SET, min(start, self.length) >> self._shift)
            if index < 0:
                index = bits.find(_SET)
            most = max(1, limit >> self._shift)
            stop = bits.find(_CLEAR, index, index + most)
            end = min(len(bits), index + most) if stop < 0 else stop
            self._dirty += self._fill(index, end, _CLEAR)
        offset = index << self._shift
        return offset, min(end << self._shift, self.length) - offset

    # Section: queries

    def is_dirty(self, offset: int) -> bool:
        if not 0 <= offset < self.length:
            return False
        with self._lock:
            return self._bits[offset >> self._shift] == 1

    def count(self) -> int:
        """Dirty bytes, the last granule clipped to the node's length."""
        with self._lock:
            dirty = self._dirty
            last_dirty = bool(self._bits) and self._bits[-1] == 1
        total = dirty << self._shift
        if last_dirty:
            total -= (len(self._bits) << self._shift) - self.length
        return total

    def granule_count(self) -> int:
        """Dirty bytes counted in whole granules, as QEMU reports "count"."""
        with self._lock:
            return self._dirty << self._shift

    def info(self) -> dict[str, Any]:
        """BlockDirtyInfo for query-named-block-nodes (an anonymous bitmap)."""
        return {
            "count": self.granule_count(),
            "granularity": self.granularity,
            "recording": self.recording,
            "busy": False,
            "persistent": False,
        }

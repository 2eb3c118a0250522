"""Reference counts: who owns which host cluster, and where new clusters go.

Every host cluster in use (header, tables, data) has a refcount; qemu-img check
compares them with what the tables reference, so they must never be lower than
the truth (a cluster in use twice) and should not be higher (a leak).  qjobd keeps
them in memory as it changes them and writes them back in the order that keeps the
image consistent at every moment (see :meth:`Refcounts.write_back`).

Allocation appends: new clusters come from the end of the file, so a copy's
clusters stay contiguous, and a cluster freed during a session is never handed out
again in it, which is what makes "a pointer to freed space" impossible whatever
order the kernel writes things in.  Only 16-bit refcounts are written (QEMU's
default and the only width qemu-img creates by default); other widths are read.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Callable
from typing import Final

from qjobd.errors import QMPError

#: Bits 9-63 of a refcount table entry: a refcount block's offset.
REFTABLE_OFFSET_MASK: Final = 0xFFFF_FFFF_FFFF_FE00
MAX_REFCOUNT: Final = 0xFFFF


def to_big_endian(values: array.array[int]) -> bytes:
    """The big-endian bytes of an array of native integers."""
    if sys.byteorder == "little":
        copy = array.array(values.typecode, values)
        copy.byteswap()
        return copy.tobytes()
    return values.tobytes()


class Refcounts:
    """The refcount table and the blocks it points at, for one image.

    :param read_at: reads the image file.
    :param write_at: writes the image file.
    :param sync: makes everything written so far durable (fdatasync).
    """

    def __init__(self, *, cluster_bits: int, refcount_order: int, table_offset: int,
                 table_clusters: int, file_length: int,
                 read_at: Callable[[int, int], bytes],
                 write_at: Callable[[int, bytes], None],
                 sync: Callable[[], None]) -> None:
        if refcount_order != 4:
            raise QMPError(f"qjobd writes qcow2 images with 16-bit refcounts only "
                           f"(this image has refcount_bits={1 << refcount_order}); "
                           "open it read-only")
        self.cluster_bits = cluster_bits
        self.cluster_size = 1 << cluster_bits
        self.per_block = self.cluster_size // 2
        self._read_at = read_at
        self._write_at = write_at
        self._sync = sync
        raw = read_at(table_offset, table_clusters << cluster_bits)
        self.table: list[int] = [
            entry & REFTABLE_OFFSET_MASK
            for entry in struct.unpack(f">{len(raw) // 8}Q", raw)]
        self.table_offset = table_offset
        self.table_clusters = table_clusters
        first = table_offset >> cluster_bits
        #: Host clusters of the refcount table and blocks (writes must spare them).
        self.metadata: set[int] = {offset >> cluster_bits for offset in self.table if offset}
        self.metadata.update(range(first, first + table_clusters))
        self._blocks: dict[int, array.array[int]] = {}
        self._dirty_blocks: set[int] = set()
        self._dirty_entries: set[int] = set()
        #: A grown table not yet written: (old offset, old clusters) to free after.
        self._moved_from: tuple[int, int] | None = None
        #: Host clusters whose references are dropped once nothing points at them.
        self.pending_frees: list[int] = []
        #: The next cluster index allocation hands out (past everything in use).
        self.next_free = -(-file_length // self.cluster_size)
        self.next_free = max(self.next_free, self._highest_referenced() + 1)
        #: Called when the table moves: (offset, clusters) for the header.
        self.on_table_moved: Callable[[int, int], None] | None = None

    # Section: reading and changing counts

    def _highest_referenced(self) -> int:
        """The last cluster index with a nonzero refcount (past a truncated file)."""
        highest = max((offset >> self.cluster_bits for offset in self.table), default=-1)
        for index in range(len(self.table) - 1, -1, -1):
            if self.table[index]:
                block = self._block(index)
                for position in range(len(block) - 1, -1, -1):
                    if block[position]:
                        return max(highest, index * self.per_block + position)
        return highest

    def _block(self, index: int) -> array.array[int]:
        block = self._blocks.get(index)
        if block is None:
            offset = self.table[index]
            block = array.array("H")
            if offset:
                block.frombytes(self._read_at(offset, self.cluster_size))
                if sys.byteorder == "little":
                    block.byteswap()
            else:
                block.frombytes(bytes(self.cluster_size))
            self._blocks[index] = block
        return block

    def block(self, index: int) -> array.array[int]:
        """Refcount block ``index`` as it is now (zeroes where none exists yet);
        the caller must not change it."""
        if index >= len(self.table):
            return array.array("H", bytes(self.cluster_size))
        return self._block(index)

    def get(self, cluster: int) -> int:
        index, position = divmod(cluster, self.per_block)
        if index >= len(self.table) or not self.table[index]:
            return 0
        return self._block(index)[position]

    def change(self, cluster: int, delta: int) -> int:
        """Add ``delta`` to a cluster's refcount; the new count.  Its block must exist."""
        index, position = divmod(cluster, self.per_block)
        block = self._block(index)
        value = block[position] + delta
        if not 0 <= value <= MAX_REFCOUNT:
            raise OSError(5, f"refcount of cluster {cluster} would become {value}")
        block[position] = value
        self._dirty_blocks.add(index)
        return value

    # Section: allocation

    def allocate(self, count: int) -> int:
        """``count`` contiguous new clusters with refcount 1; their host offset."""
        while True:
            start = self.next_free
            if self._ensure_blocks(start, count):
                break
        self.next_free = start + count
        for cluster in range(start, start + count):
            self.change(cluster, 1)
        return start << self.cluster_bits

    def _ensure_blocks(self, start: int, count: int) -> bool:
        """Make refcount blocks cover clusters [start, start+count).

        Returns False when it had to allocate (``next_free`` moved, so the caller
        starts again from there).
        """
        first = start // self.per_block
        last = (start + count - 1) // self.per_block
        if last >= len(self.table):
            self._grow_table(last + 1)
            return False
        for index in range(first, last + 1):
            if not self.table[index]:
                self._new_block(index)
                return False
        return True

    def _new_block(self, index: int) -> None:
        """A refcount block for table entry ``index``, placed at the end of the file.

        If the block covers its own cluster it counts itself; otherwise the cluster
        it sits in needs a block too, which the next round makes.
        """
        where = self.next_free
        self.next_free += 1
        self.metadata.add(where)
        self.table[index] = where << self.cluster_bits
        self._blocks[index] = array.array("H", bytes(self.cluster_size))
        self._dirty_blocks.add(index)
        self._dirty_entries.add(index)
        own = where // self.per_block
        if own >= len(self.table):
            self._grow_table(own + 1)
        if not self.table[own]:
            self._new_block(own)
        self.change(where, 1)

    def _grow_table(self, entries: int) -> None:
        """Move the refcount table to a bigger place at the end of the file."""
        entries = max(entries, len(self.table) * 3 // 2)
        clusters = -(-entries * 8 // self.cluster_size)
        entries = clusters * self.cluster_size // 8
        start = self.next_free
        self.next_free += clusters
        self.table.extend([0] * (entries - len(self.table)))
        if self._moved_from is None:
            self._moved_from = (self.table_offset, self.table_clusters)
        else:
            # Grown twice before a write-back: the intermediate table was never
            # written, so its clusters go straight back.
            self.pending_frees.extend(range(self.table_offset >> self.cluster_bits,
                                            (self.table_offset >> self.cluster_bits)
                                            + self.table_clusters))
        self.table_offset = start << self.cluster_bits
        self.table_clusters = clusters
        self.metadata.update(range(start, start + clusters))
        for cluster in range(start, start + clusters):
            index = cluster // self.per_block
            if not self.table[index]:
                self._new_block(index)
            self.change(cluster, 1)

    def free_later(self, clusters: list[int]) -> None:
        """Drop one reference from each cluster once the tables stop pointing at it."""
        self.pending_frees.extend(clusters)

    # Section: writing back

    def dirty(self) -> bool:
        return bool(self._dirty_blocks or self._dirty_entries or self._moved_from)

    def write_back(self) -> None:
        """Refcount blocks first, then the table entries that point at new ones.

        A moved table is written whole, made durable, and only then named in the
        header; the old table's clusters are freed after that.
        """
        for index in sorted(self._dirty_blocks):
            self._write_at(self.table[index], to_big_endian(self._blocks[index]))
        self._dirty_blocks.clear()
        if self._moved_from is not None:
            raw = struct.pack(f">{len(self.table)}Q", *self.table)
            self._write_at(self.table_offset, raw)
            self._sync()
            assert self.on_table_moved is not None
            self.on_table_moved(self.table_offset, self.table_clusters)
            old_offset, old_clusters = self._moved_from
            self._moved_from = None
            self._dirty_entries.clear()
            first = old_offset >> self.cluster_bits
            self.pending_frees.extend(range(first, first + old_clusters))
        elif self._dirty_entries:
            self._sync()
            for index in sorted(self._dirty_entries):
                self._write_at(self.table_offset + 8 * index,
                               struct.pack(">Q", self.table[index]))
            self._dirty_entries.clear()

    def apply_pending_frees(self) -> None:
        """Drop the references queued with :meth:`free_later` (in memory)."""
        frees, self.pending_frees = self.pending_frees, []
        for cluster in frees:
            self.change(cluster, -1)

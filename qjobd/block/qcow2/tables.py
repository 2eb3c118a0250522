"""qcow2's address translation: L1 and L2 entries, what they say about a guest range.

Pure functions and small records, no I/O: the image object feeds them table
contents.  An L2 entry (or, with extended L2, an entry and its subcluster bitmap)
says one of four things about its range, and :class:`Kind` names them.  Entries that
break the format's rules (unaligned offsets, a subcluster both allocated and zero)
are reported as :class:`CorruptEntry`, which the image turns into EIO as QEMU does.
"""

from __future__ import annotations

import array
import enum
import sys
from collections.abc import Sequence
from typing import Final

import attrs

#: Bits 9-55 of L1 and L2 entries: a host offset.
OFFSET_MASK: Final = 0x00FF_FFFF_FFFF_FE00
COPIED: Final = 1 << 63
COMPRESSED: Final = 1 << 62
ZERO: Final = 1 << 0
L1_RESERVED: Final = 0x7F00_0000_0000_01FF
SUBCLUSTERS: Final = 32


class Kind(enum.Enum):
    """What a guest range is in this image (QEMU's QCow2SubclusterType, merged)."""

    #: Stored uncompressed at a host offset.
    DATA = "data"
    #: Reads as zeroes (a zero cluster, or zero subclusters).
    ZERO = "zero"
    #: Not in this image: comes from the backing file, or zeroes without one.
    UNALLOCATED = "unallocated"
    #: One compressed cluster; ``host`` holds the raw L2 entry.
    COMPRESSED = "compressed"


class CorruptEntry(Exception):
    """A table entry that the format forbids; the message is QEMU's wording."""


@attrs.frozen
class Run:
    """A run of a guest range with one :class:`Kind`, as the tables describe it.

    ``host`` is the host offset of the run's first byte for DATA (the run is
    contiguous on the host), the raw L2 entry for COMPRESSED, else 0.
    """

    kind: Kind
    length: int
    host: int = 0


@attrs.frozen
class Geometry:
    """The header's shape, as the table code needs it."""

    cluster_bits: int
    extended_l2: bool

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def l2_bits(self) -> int:
        return self.cluster_bits - (4 if self.extended_l2 else 3)

    @property
    def l2_entries(self) -> int:
        return 1 << self.l2_bits

    @property
    def subcluster_bits(self) -> int:
        return self.cluster_bits - 5 if self.extended_l2 else self.cluster_bits

    @property
    def compressed_shift(self) -> int:
        """Where the sector count starts in a compressed L2 entry."""
        return 62 - (self.cluster_bits - 8)

    def split(self, offset: int) -> tuple[int, int, int]:
        """(L1 index, L2 index, byte within the cluster) of a guest offset."""
        cluster = offset >> self.cluster_bits
        return (cluster >> self.l2_bits, cluster & (self.l2_entries - 1),
                offset & (self.cluster_size - 1))

    def compressed_extent(self, entry: int) -> tuple[int, int]:
        """(host offset, byte count) of a compressed cluster's data."""
        shift = self.compressed_shift
        host = entry & ((1 << shift) - 1)
        sectors = ((entry >> shift) & ((1 << (self.cluster_bits - 8)) - 1)) + 1
        return host, sectors * 512 - (host & 511)


def l2_offset(l1_entry: int, l1_index: int, cluster_size: int) -> int:
    """The L2 table an L1 entry points at (0: none); raises CorruptEntry."""
    offset = l1_entry & OFFSET_MASK
    if offset % cluster_size:
        raise CorruptEntry(f"L2 table offset {offset:#x} unaligned "
                           f"(L1 index: {l1_index:#x})")
    return offset


def _standard_kind(entry: int, cluster_size: int) -> tuple[Kind, int]:
    if entry & COMPRESSED:
        return Kind.COMPRESSED, entry
    host = entry & OFFSET_MASK
    if entry & ZERO:
        return Kind.ZERO, 0
    if not host:
        return Kind.UNALLOCATED, 0
    if host % cluster_size:
        raise CorruptEntry(f"Cluster allocation offset {host:#x} unaligned")
    return Kind.DATA, host


def _subcluster_kind(entry: int, bitmap: int, index: int,
                     geometry: Geometry) -> tuple[Kind, int]:
    if entry & COMPRESSED:
        return Kind.COMPRESSED, entry
    allocated = bitmap >> index & 1
    zero = bitmap >> (index + SUBCLUSTERS) & 1
    host = entry & OFFSET_MASK
    if allocated and zero:
        raise CorruptEntry(f"Invalid subcluster bitmap {bitmap:#x}")
    if zero:
        return Kind.ZERO, 0
    if not allocated:
        return Kind.UNALLOCATED, 0
    if not host:
        raise CorruptEntry(f"Allocated subcluster without a cluster, bitmap {bitmap:#x}")
    if host % geometry.cluster_size:
        raise CorruptEntry(f"Cluster allocation offset {host:#x} unaligned")
    return Kind.DATA, host + (index << geometry.subcluster_bits)


def run_in_table(table: Sequence[int] | None, geometry: Geometry, offset: int,
                 length: int) -> Run:
    """The first run of [offset, offset+length) inside one L2 table's range.

    ``table`` holds the table's entries as integers (two per cluster, entry then
    bitmap, with extended L2), or is None when the L1 entry is empty.  The run never
    crosses the table's range; adjacent clusters join it while they have the same
    kind and, for data, follow each other on the host.  Compressed clusters are
    returned one at a time.
    """
    _, l2_index, within = geometry.split(offset)
    cluster_size = geometry.cluster_size
    table_left = ((geometry.l2_entries - l2_index) << geometry.cluster_bits) - within
    length = min(length, table_left)
    if table is None:
        return Run(Kind.UNALLOCATED, length)
    if not geometry.extended_l2:
        fast = _uniform_run(table, geometry, offset, length)
        if fast is not None:
            return fast
    unit_bits = geometry.subcluster_bits
    unit = 1 << unit_bits
    position = offset
    end = offset + length
    first_kind: Kind | None = None
    first_host = 0
    expected_host = 0
    while position < end:
        cluster = (position >> geometry.cluster_bits) & (geometry.l2_entries - 1)
        if geometry.extended_l2:
            sub = (position >> unit_bits) & (SUBCLUSTERS - 1)
            kind, host = _subcluster_kind(table[2 * cluster], table[2 * cluster + 1],
                                          sub, geometry)
            if kind is Kind.COMPRESSED:
                unit_start = position & ~(cluster_size - 1)
                step = cluster_size
            else:
                unit_start = position & ~(unit - 1)
                step = unit
        else:
            kind, host = _standard_kind(table[cluster], cluster_size)
            unit_start = position & ~(cluster_size - 1)
            step = cluster_size
        skip = position - unit_start
        if first_kind is None:
            first_kind = kind
            if kind is Kind.DATA:
                first_host = host + skip
            elif kind is Kind.COMPRESSED:
                return Run(kind, min(end, unit_start + step) - position, host)
            expected_host = host + step
        elif (kind is not first_kind or kind is Kind.COMPRESSED
              or (kind is Kind.DATA and host != expected_host)):
            break
        else:
            expected_host = host + step
        position = unit_start + step
    assert first_kind is not None
    return Run(first_kind, min(position, end) - offset, first_host)


#: Entries compared at once when looking for the end of a uniform run.
_RUN_BLOCK: Final = 64


def _uniform_run(table: Sequence[int], geometry: Geometry, offset: int,
                 length: int) -> Run | None:
    """The common runs found at C speed: unallocated entries (0), plain zero
    clusters (the zero flag alone), and data clusters that follow each other on
    the host (each entry the previous plus one cluster).  None: the slow walk
    decides (compressed clusters, preallocated zero clusters, anything odd).

    Entries are compared against the arithmetic sequence they would form, a block
    at a time, so that a fully allocated image costs no Python per cluster.
    """
    bits = geometry.cluster_bits
    cluster_size = geometry.cluster_size
    first = (offset >> bits) & (geometry.l2_entries - 1)
    clusters = ((offset + length - 1) >> bits) - (offset >> bits) + 1
    entry = table[first]
    if entry == 0:
        kind, host, step = Kind.UNALLOCATED, 0, 0
    elif entry == ZERO:
        kind, host, step = Kind.ZERO, 0, 0
    else:
        kind, host = _standard_kind(entry, cluster_size)
        if kind is not Kind.DATA:
            return None
        step = cluster_size
    if not isinstance(table, array.array):
        return None
    count = 0
    while count < clusters:
        size = min(_RUN_BLOCK, clusters - count)
        start = entry + count * step
        expected = (array.array("Q", range(start, start + size * step, step)) if step
                    else array.array("Q", [entry]) * size)
        chunk = table[first + count:first + count + size]
        if chunk == expected:
            count += size
            continue
        while chunk[0] == expected[0]:
            chunk, expected = chunk[1:], expected[1:]
            count += 1
        break
    within = offset & (cluster_size - 1)
    run_length = min(length, (count << bits) - within)
    return Run(kind, run_length, host + within if kind is Kind.DATA else 0)


def decode_entries(raw: bytes) -> array.array[int]:
    """Big-endian 64-bit table entries as a native array (8 bytes each in memory,
    where a list would take about 36)."""
    entries = array.array("Q", raw[:len(raw) // 8 * 8])
    if sys.byteorder == "little":
        entries.byteswap()
    return entries


def encode_entries(entries: array.array[int]) -> bytes:
    """The on-disk (big-endian) bytes of table entries."""
    if sys.byteorder == "little":
        swapped = array.array("Q", entries)
        swapped.byteswap()
        return swapped.tobytes()
    return entries.tobytes()

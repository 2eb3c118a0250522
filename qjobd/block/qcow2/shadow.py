"""Snapshot operations as one atomic switch of the header's table pointers.

Creating, loading or deleting an internal snapshot changes refcounts and COPIED
flags in many clusters at once, and ``qemu-img check`` calls any state in between
corrupt: an active table entry must carry COPIED exactly when its cluster's refcount
is 1, and refcounts live in other clusters than the entries.  QEMU edits the tables
in place and accepts that window.  qjobd does not edit them: it writes every table
that changes to new clusters past the end of the image (copies of the refcount
blocks, of the L2 tables whose flags change, a new active L1, a new snapshot table,
a new refcount table), makes them durable, and then points the header at them with
one write inside its first sector.  Before that write the image is exactly the old
one (the new clusters are referenced by nothing and counted by nothing); after it,
exactly the new one, in which the tables left behind already count zero.  A crash
at any moment therefore leaves a consistent image without even a leak.

Planning is pure: :func:`plan` reads tables through callbacks and returns the
writes and the new header fields; the image performs them (see
``Qcow2Image._switch_tables``).

Refcounts follow QEMU's rule: a cluster counts one reference per path from an L1
table (the active one or a snapshot's) to it, so a data cluster under an L2 table
that two L1 tables share counts two.
"""

from __future__ import annotations

import array
import collections
import errno
import struct
from collections.abc import Callable, Iterable
from typing import Final

import attrs

from qjobd.block.qcow2.refcounts import MAX_REFCOUNT, Refcounts, to_big_endian
from qjobd.block.qcow2.snapshots import Snapshot
from qjobd.block.qcow2.tables import COMPRESSED, COPIED, OFFSET_MASK, Geometry, encode_entries

__all__ = ["HEADER_POINTERS", "Layout", "Switch", "plan"]

#: The header fields a switch rewrites, from byte 24: size, crypt_method, l1_size,
#: l1_table_offset, refcount_table_offset, refcount_table_clusters, nb_snapshots,
#: snapshots_offset (48 bytes, all in the first sector).
HEADER_POINTERS: Final = struct.Struct(">QIIQQIIQ")
HEADER_POINTERS_OFFSET: Final = 24


@attrs.define
class Layout:
    """The image's tables as they are on disk now (everything written back)."""

    geometry: Geometry
    #: The virtual size and crypt_method header fields (rewritten as they are).
    size: int
    crypt_method: int
    l1: array.array[int]
    l1_offset: int
    snapshots: list[Snapshot]
    #: (offset, bytes) of the snapshot table; (0, 0) without one.
    snapshot_table: tuple[int, int]
    refcounts: Refcounts
    #: Reads ``count`` table entries at a host offset (L1 or L2 tables).
    read_entries: Callable[[int, int], array.array[int]]


@attrs.define
class Switch:
    """What :func:`plan` decided: new clusters to write, then the header fields."""

    #: (host offset, data): every new table, all in clusters nothing references yet.
    writes: list[tuple[int, bytes]]
    l1: array.array[int]
    l1_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    snapshots: list[Snapshot]
    snapshots_offset: int
    size: int
    crypt_method: int

    def header_pointers(self) -> bytes:
        return HEADER_POINTERS.pack(self.size, self.crypt_method, len(self.l1),
                                    self.l1_offset,
                                    self.refcount_table_offset,
                                    self.refcount_table_clusters, len(self.snapshots),
                                    self.snapshots_offset)


class _Planner:
    """One plan's working state: reference deltas and clusters handed out."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.geometry = layout.geometry
        self.bits = layout.geometry.cluster_bits
        self.cluster_size = 1 << self.bits
        self.delta: collections.Counter[int] = collections.Counter()
        self.next_free = layout.refcounts.next_free
        self.writes: list[tuple[int, bytes]] = []
        self._tables: dict[int, array.array[int]] = {}

    def table(self, offset: int) -> array.array[int]:
        entries = self.cluster_size // 8
        table = self._tables.get(offset)
        if table is None:
            table = self.layout.read_entries(offset, entries)
            self._tables[offset] = table
        return table

    def extent(self, offset: int, length: int) -> range:
        return range(offset >> self.bits, (offset + length - 1 >> self.bits) + 1)

    def allocate(self, clusters: int) -> int:
        """New clusters past everything the image uses; counted once each."""
        start = self.next_free
        self.next_free += clusters
        self.delta.update(range(start, start + clusters))
        return start << self.bits

    def count_paths(self, table: array.array[int], sign: int,
                    into: collections.Counter[int] | None = None) -> None:
        """One reference more (or less) for every cluster an L2 table points at."""
        delta = self.delta if into is None else into
        bits = self.bits
        for entry in table:
            if entry & COMPRESSED:
                host, count = self.geometry.compressed_extent(entry)
                for cluster in self.extent(host, count):
                    delta[cluster] += sign
            elif entry & OFFSET_MASK:
                delta[(entry & OFFSET_MASK) >> bits] += sign

    def drop_l1(self, offset: int, entries: array.array[int]) -> None:
        """An L1 table nothing will reference: its clusters and every path under it."""
        if entries:
            for cluster in self.extent(offset, 8 * len(entries)):
                self.delta[cluster] -= 1
        for entry in entries:
            table_offset = entry & OFFSET_MASK
            if table_offset:
                self.delta[table_offset >> self.bits] -= 1
                self.count_paths(self.table(table_offset), -1)

    def final(self, cluster: int) -> int:
        return self.layout.refcounts.get(cluster) + self.delta[cluster]


def plan_repair(layout: Layout, file_length: int) -> Switch:
    """The switch that makes refcounts and COPIED flags true again (a dirty image).

    Every reference is counted from the header down, as qemu-img check counts
    them; the difference from the stored refcounts goes into the same plan as a
    snapshot operation's, with the active tables rebuilt so their flags follow.
    A reference past the end of the file cannot be repaired (OSError EIO).
    """
    planner = _Planner(layout)
    truth: collections.Counter[int] = collections.Counter()
    bits = planner.bits
    truth[0] += 1
    l1_tables = [(layout.l1_offset, layout.l1)]
    l1_tables += [(s.l1_table_offset, layout.read_entries(s.l1_table_offset, s.l1_size))
                  for s in layout.snapshots]
    for offset, entries in l1_tables:
        if entries:
            truth.update(planner.extent(offset, 8 * len(entries)))
        for entry in entries:
            table_offset = entry & OFFSET_MASK
            if table_offset:
                truth[table_offset >> bits] += 1
                planner.count_paths(planner.table(table_offset), +1, into=truth)
    table_offset, table_bytes = layout.snapshot_table
    if table_bytes:
        truth.update(planner.extent(table_offset, table_bytes))
    refcounts = layout.refcounts
    truth.update(planner.extent(refcounts.table_offset,
                                refcounts.table_clusters << bits))
    truth.update(entry >> bits for entry in refcounts.table if entry)
    end = -(-file_length // planner.cluster_size)
    if truth and max(truth) >= end:
        raise OSError(errno.EIO, f"cluster {max(truth)} is referenced but lies past the "
                                 "end of the image file")
    stored: dict[int, int] = {}
    for index, block_offset in enumerate(refcounts.table):
        if block_offset:
            block = refcounts.block(index)
            if any(block):
                base = index * refcounts.per_block
                stored.update((base + position, count)
                              for position, count in enumerate(block) if count)
    for cluster in set(truth) | set(stored):
        planner.delta[cluster] += truth[cluster] - stored.get(cluster, 0)
    return _plan_with(planner, active=layout.l1, snapshots=list(layout.snapshots),
                      dropped=[(layout.l1_offset, layout.l1)])


def plan(layout: Layout, *, active: Iterable[int], snapshots: list[Snapshot],
         dropped: Iterable[tuple[int, array.array[int]]]) -> Switch:
    """The switch to a new active L1 mapping ``active`` and the table ``snapshots``.

    The new active L1 is always a new table: ``active`` gives the L2 tables it
    points at (raw L1 entries; flags are recomputed).  ``dropped`` lists the L1
    tables (offset, entries) that nothing references afterwards: the current active
    L1 unless a new snapshot keeps it, and a deleted snapshot's.  Raises
    OSError(EIO) when the refcounts would leave their range (a corrupt image); then
    nothing has been written.
    """
    return _plan_with(_Planner(layout), active=active, snapshots=snapshots,
                      dropped=dropped)


def _plan_with(planner: _Planner, *, active: Iterable[int], snapshots: list[Snapshot],
               dropped: Iterable[tuple[int, array.array[int]]]) -> Switch:
    layout = planner.layout
    for offset, entries in dropped:
        planner.drop_l1(offset, entries)
    sources = [entry & OFFSET_MASK for entry in active]
    for offset in sources:
        if offset:
            planner.count_paths(planner.table(offset), +1)
    new_l1 = _active_tables(planner, sources)
    l1_offset = 0
    if new_l1:
        l1_bytes = encode_entries(new_l1)
        l1_offset = planner.allocate(len(planner.extent(0, len(l1_bytes))))
        planner.writes.append((l1_offset, _padded(l1_bytes, planner.cluster_size)))
    table_offset, table_bytes = layout.snapshot_table
    if table_bytes:
        for cluster in planner.extent(table_offset, table_bytes):
            planner.delta[cluster] -= 1
    encoded = b"".join(snapshot.encode() for snapshot in snapshots)
    snapshots_offset = 0
    if encoded:
        snapshots_offset = planner.allocate(len(planner.extent(0, len(encoded))))
        planner.writes.append((snapshots_offset, _padded(encoded, planner.cluster_size)))
    reftable_offset, reftable_clusters = _refcount_structures(planner)
    return Switch(writes=planner.writes, l1=new_l1, l1_offset=l1_offset,
                  refcount_table_offset=reftable_offset,
                  refcount_table_clusters=reftable_clusters, snapshots=snapshots,
                  snapshots_offset=snapshots_offset, size=layout.size,
                  crypt_method=layout.crypt_method)


def _active_tables(planner: _Planner, sources: list[int]) -> array.array[int]:
    """The new active L1: each L2 table shared when its COPIED flags are already
    right for the final refcounts, else copied with the right flags."""
    l1 = array.array("Q", bytes(8 * len(sources)))
    copies: list[tuple[int, array.array[int]]] = []
    for index, offset in enumerate(sources):
        if not offset:
            continue
        table = planner.table(offset)
        wanted = _with_copied_flags(planner, table)
        if wanted == table:
            planner.delta[offset >> planner.bits] += 1
            l1[index] = offset
        else:
            copies.append((index, wanted))
    for index, table in copies:
        offset = planner.allocate(1)
        planner.writes.append((offset, encode_entries(table)))
        l1[index] = offset
    for index, offset in enumerate(l1):
        if offset and planner.final(offset >> planner.bits) == 1:
            l1[index] = offset | COPIED
    return l1


def _with_copied_flags(planner: _Planner, table: array.array[int]) -> array.array[int]:
    """The table's entries with COPIED set exactly where the final refcount is 1."""
    wanted = array.array("Q", table)
    bits = planner.bits
    for position, entry in enumerate(table):
        if entry & COMPRESSED:
            if entry & COPIED:
                wanted[position] = entry & ~COPIED
            continue
        host = entry & OFFSET_MASK
        if not host:
            continue
        copied = planner.final(host >> bits) == 1
        if copied != bool(entry & COPIED):
            wanted[position] = entry ^ COPIED
    return wanted


def _refcount_structures(planner: _Planner) -> tuple[int, int]:
    """Copies of every refcount block a delta touches, and a new refcount table.

    Each new block is itself a new cluster and frees the old block's cluster, which
    may touch further blocks; the closure ends because every block is copied once.
    The table's size is a guess made good by retrying: the plan is all arithmetic
    until the writes are returned.
    """
    refcounts = planner.layout.refcounts
    per_block = refcounts.per_block
    entries_per_cluster = planner.cluster_size // 8
    table_clusters = refcounts.table_clusters
    start_delta = collections.Counter(planner.delta)
    start_free = planner.next_free
    start_writes = len(planner.writes)
    while True:
        planner.delta = collections.Counter(start_delta)
        planner.next_free = start_free
        del planner.writes[start_writes:]
        table_offset = planner.allocate(table_clusters)
        for cluster in planner.extent(refcounts.table_offset,
                                      refcounts.table_clusters << planner.bits):
            planner.delta[cluster] -= 1
        moved: dict[int, int] = {}
        pending = {cluster // per_block for cluster, value in planner.delta.items() if value}
        while pending:
            index = pending.pop()
            where = planner.allocate(1) >> planner.bits
            moved[index] = where
            touched = {where // per_block}
            old = refcounts.table[index] if index < len(refcounts.table) else 0
            if old:
                planner.delta[old >> planner.bits] -= 1
                touched.add((old >> planner.bits) // per_block)
            pending |= touched - moved.keys()
        needed = max(len(refcounts.table), max(moved, default=-1) + 1)
        if needed <= table_clusters * entries_per_cluster:
            break
        table_clusters = -(-needed // entries_per_cluster) + 1
    by_block: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    for cluster, value in planner.delta.items():
        if value:
            by_block[cluster // per_block].append((cluster % per_block, value))
    table = list(refcounts.table)
    table.extend([0] * (table_clusters * entries_per_cluster - len(table)))
    for index, where in sorted(moved.items()):
        block = array.array("H", refcounts.block(index))
        for position, value in by_block.get(index, ()):
            count = block[position] + value
            if not 0 <= count <= MAX_REFCOUNT:
                cluster = index * per_block + position
                raise OSError(errno.EIO, f"refcount of cluster {cluster} would become "
                                         f"{count}: the image is corrupt")
            block[position] = count
        planner.writes.append((where << planner.bits, to_big_endian(block)))
        table[index] = where << planner.bits
    planner.writes.append((table_offset, struct.pack(f">{len(table)}Q", *table)))
    return table_offset, table_clusters


def _padded(data: bytes, cluster_size: int) -> bytes:
    return data + bytes(-len(data) % cluster_size)

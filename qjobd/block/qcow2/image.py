"""One open qcow2 image: its header, L1 table, a bounded L2 cache and translation.

This is the format's logic without the block graph: it reads and writes the image
file through a small :class:`Storage` interface (the node's ``file`` child), and
answers "what is at this guest offset" as :class:`~qjobd.block.qcow2.tables.Run`
records.  Worker threads call it concurrently, so the caches sit behind one lock;
data I/O happens outside it.
"""

from __future__ import annotations

import array
import collections
import errno
import logging
import os
import struct
import threading
import zlib
from typing import Final, NamedTuple, Protocol

from qjobd.block.qcow2 import header as hdr
from qjobd.block.qcow2 import shadow
from qjobd.block.qcow2 import snapshots as snap
from qjobd.block.qcow2.refcounts import Refcounts
from qjobd.block.qcow2.tables import (
    COMPRESSED,
    COPIED,
    OFFSET_MASK,
    ZERO,
    CorruptEntry,
    Run,
    decode_entries,
    encode_entries,
    l2_offset,
    run_in_table,
)
from qjobd.errors import QMPError

_log = logging.getLogger(__name__)

#: Bytes of L2 tables kept in memory per image.  QEMU's default covers 32 MiB of
#: guest per MiB of cache at 64 KiB clusters; 8 MiB covers 64 GiB of guest at
#: 64 KiB clusters and is still modest next to the daemon's other memory.
L2_CACHE_BYTES: Final = 8 << 20
#: Bytes of changed L2 tables kept in memory before they are written back (besides
#: every flush): bounds what a kill loses to leaked clusters.
DIRTY_L2_BYTES: Final = 4 << 20
#: Guest bytes one allocating write step covers at most (one pwrite of new data).
MAX_WRITE_STEP: Final = 32 << 20


class Storage(Protocol):
    """What the image needs from the file under it (a BlockNode fits)."""

    def pread(self, offset: int, length: int) -> bytes: ...

    def readinto(self, offset: int, buffer: memoryview) -> None: ...

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...

    def flush(self) -> None: ...

    def length(self) -> int: ...


class ReadBelow(Protocol):
    """Fills a buffer with what lies under this image at a guest offset (the
    backing chain, or zeroes without one)."""

    def __call__(self, offset: int, buffer: memoryview, /) -> None: ...


class Fill(Protocol):
    """Puts the new guest bytes at ``guest`` (``count`` of them) into the image file
    at host offset ``host`` by itself (copy_file_range from another file)."""

    def __call__(self, guest: int, host: int, count: int, /) -> None: ...


class _Placement(NamedTuple):
    """Where one write step's bytes go: clusters this image owns (``in_place``), or
    a new contiguous run of host clusters whose L2 entries are set once the data is
    in it."""

    table_offset: int
    table: array.array[int]
    l2_index: int
    #: Where in its first cluster the step starts.
    within: int
    #: Guest bytes the step covers.
    step: int
    #: Clusters the step touches.
    clusters: int
    #: Host offset of the step's first cluster.
    host: int
    in_place: bool


def _eio(message: str) -> OSError:
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)} ({message})")


class Qcow2Image:
    """See the module docstring.  Raises QMPError from the constructor with QEMU's
    message when the image cannot be opened."""

    def __init__(self, storage: Storage, *, writable: bool) -> None:
        self.storage = storage
        self.header = hdr.parse(storage.pread, writable=writable)
        header = self.header
        self.geometry = header.geometry
        raw_l1 = storage.pread(header.l1_table_offset, 8 * header.l1_size)
        self.l1 = decode_entries(raw_l1)
        self.snapshots, self._snapshot_table_bytes = snap.parse(
            storage.pread, header.snapshots_offset, header.nb_snapshots, header.size)
        self._lock = threading.RLock()
        self._l2_cache: collections.OrderedDict[int, array.array[int]] = (
            collections.OrderedDict())
        self._l2_cache_limit = max(4, L2_CACHE_BYTES >> header.cluster_bits)
        self._zstd = None
        if header.compression_type == hdr.COMPRESSION_ZSTD:
            self._zstd = _zstd_decompressor()
        self.writable = writable
        self._dirty_l2: set[int] = set()
        self._dirty_l1: set[int] = set()
        self._dirty_l2_limit = max(8, DIRTY_L2_BYTES >> header.cluster_bits)
        self._refcounts: Refcounts | None = None
        #: Host clusters of the header, L1 and snapshot tables, and of L2 tables.
        self._fixed_metadata: set[int] = set()
        self._l2_clusters: set[int] = set()
        if writable:
            self._open_for_writing()

    @property
    def size(self) -> int:
        return self.header.size

    @property
    def cluster_size(self) -> int:
        return self.header.cluster_size

    # Section: translation

    def _l2_table(self, l1_index: int) -> array.array[int] | None:
        """The entries of the L2 table for ``l1_index`` (None: not allocated)."""
        if l1_index >= len(self.l1):
            return None
        try:
            offset = l2_offset(self.l1[l1_index], l1_index, self.cluster_size)
        except CorruptEntry as exc:
            raise _eio(str(exc)) from None
        if not offset:
            return None
        with self._lock:
            table = self._l2_cache.get(offset)
            if table is not None:
                self._l2_cache.move_to_end(offset)
                return table
            raw = self.storage.pread(offset, self.cluster_size)
            table = decode_entries(raw)
            self._cache_put(offset, table)
        return table

    def _cache_put(self, offset: int, table: array.array[int]) -> None:
        """Cache a table, evicting the least recently used clean ones."""
        self._l2_cache[offset] = table
        if len(self._l2_cache) <= self._l2_cache_limit:
            return
        if len(self._dirty_l2) >= self._l2_cache_limit:
            self.write_back()
        while len(self._l2_cache) > self._l2_cache_limit:
            # The least recently used clean table; dirty ones wait for write-back.
            victim = next((key for key in self._l2_cache
                           if key not in self._dirty_l2 and key != offset), None)
            if victim is None:
                break
            del self._l2_cache[victim]

    def map(self, offset: int, length: int) -> Run:
        """The first run of the guest range (never past one L2 table's range)."""
        l1_index = offset >> (self.geometry.cluster_bits + self.geometry.l2_bits)
        table = self._l2_table(l1_index)
        try:
            return run_in_table(table, self.geometry, offset, length)
        except CorruptEntry as exc:
            raise _eio(str(exc)) from None

    # Section: opening for writing

    def _open_for_writing(self) -> None:
        header = self.header
        if header.extended_l2:
            raise QMPError("qjobd does not write qcow2 images with extended L2 entries "
                           "yet; open it read-only")
        self._load_refcounts()
        if header.autoclear_features:
            # Bitmaps qjobd does not keep up to date must read as stale to QEMU,
            # and unknown autoclear bits are cleared as the spec asks.
            header.autoclear_features = 0
            self.storage.pwrite(88, struct.pack(">Q", 0))
            self.storage.flush()
        if header.dirty:
            self._repair()

    def _repair(self) -> None:
        """What QEMU does when it opens a dirty image read-write: recount every
        cluster (and fix the COPIED flags), then clear the dirty bit.

        The new counts go in through the same atomic header switch as snapshots
        (see shadow.py), so a crash during the repair leaves the dirty image as it
        was, to be repaired at the next open.
        """
        try:
            switch = shadow.plan_repair(self._layout(), self.storage.length())
            self._perform(switch)
            header = self.header
            header.incompatible_features &= ~hdr.INCOMPAT_DIRTY
            self.storage.pwrite(72, struct.pack(">Q", header.incompatible_features))
            self.storage.flush()
        except OSError as error:
            reason = os.strerror(error.errno or errno.EIO)
            raise QMPError(f"Could not repair dirty image: {reason}") from None
        _log.warning("qcow2: repaired the refcounts of a dirty image")

    def _load_refcounts(self) -> None:
        """Read the refcount structures and find the metadata they must spare."""
        header = self.header
        self._refcounts = Refcounts(
            cluster_bits=header.cluster_bits, refcount_order=header.refcount_order,
            table_offset=header.refcount_table_offset,
            table_clusters=header.refcount_table_clusters,
            file_length=self.storage.length(), read_at=self.storage.pread,
            write_at=self.storage.pwrite, sync=self.storage.flush)
        self._refcounts.on_table_moved = self._refcount_table_moved
        self._find_metadata()

    def _clusters(self, offset: int, length: int) -> range:
        bits = self.header.cluster_bits
        return range(offset >> bits, ((offset + max(length, 1) - 1) >> bits) + 1)

    def _find_metadata(self) -> None:
        """Where the tables are, so that no write lands on one (QEMU's overlap
        checks), and so that allocation starts past all of them."""
        header = self.header
        fixed = {0, *self._clusters(header.l1_table_offset, 8 * header.l1_size)}
        l2_tables = {entry & OFFSET_MASK for entry in self.l1 if entry & OFFSET_MASK}
        if header.nb_snapshots:
            fixed.update(self._clusters(header.snapshots_offset,
                                        self._snapshot_table_bytes))
        for snapshot in self.snapshots:
            fixed.update(self._clusters(snapshot.l1_table_offset, 8 * snapshot.l1_size))
            raw = self.storage.pread(snapshot.l1_table_offset, 8 * snapshot.l1_size)
            l2_tables.update(entry & OFFSET_MASK
                             for entry in decode_entries(raw)
                             if entry & OFFSET_MASK)
        self._fixed_metadata = fixed
        self._l2_clusters = {offset >> header.cluster_bits for offset in l2_tables}
        refcounts = self.refcounts
        if refcounts.metadata & (fixed | self._l2_clusters):
            raise QMPError("qcow2: refcount structures overlap other metadata; repair the "
                           "image with 'qemu-img check -r all' or open it read-only")
        everything = fixed | self._l2_clusters | refcounts.metadata
        refcounts.next_free = max(refcounts.next_free, max(everything) + 1)

    def _spare_metadata(self, host: int, length: int, *, table: bool = False) -> None:
        """Refuse a write that would overwrite metadata (the image is corrupt)."""
        clusters = set(self._clusters(host, length))
        hit = clusters & (self._fixed_metadata | self.refcounts.metadata)
        if not table:
            hit |= clusters & self._l2_clusters
        if hit:
            _log.error("qcow2: preventing a write to host cluster %#x, which holds "
                       "metadata: the image is corrupt", min(hit) << self.header.cluster_bits)
            raise _eio("write would overwrite qcow2 metadata")

    def set_writable(self, writable: bool) -> None:
        """Start or stop writing (a reopen); tables are written back first."""
        if writable == self.writable:
            return
        with self._lock:
            if writable:
                self._open_for_writing()
                self.writable = True
            else:
                self.write_back()
                self.storage.flush()
                self.writable = False
                self._refcounts = None

    def _refcount_table_moved(self, offset: int, clusters: int) -> None:
        self.header.refcount_table_offset = offset
        self.header.refcount_table_clusters = clusters
        self.storage.pwrite(48, struct.pack(">QI", offset, clusters))
        self.storage.flush()

    @property
    def refcounts(self) -> Refcounts:
        if self._refcounts is None:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        return self._refcounts

    # Section: writing

    def _writable_table(self, l1_index: int) -> tuple[int, array.array[int]]:
        """The L2 table for ``l1_index``, owned by the active L1 alone (made so).

        A missing table is allocated; one shared with a snapshot is copied.  The
        new table is written back before the L1 entry that points at it.
        """
        entry = self.l1[l1_index]
        offset = l2_offset(entry, l1_index, self.cluster_size)
        if offset and entry & COPIED:
            self._spare_metadata(offset, self.cluster_size, table=True)
            table = self._l2_table(l1_index)
            assert table is not None
            return offset, table
        refcounts = self.refcounts
        new = refcounts.allocate(1)
        self._l2_clusters.add(new >> self.header.cluster_bits)
        if offset:
            old = self._l2_table(l1_index)
            assert old is not None
            table = array.array("Q", old)
            refcounts.free_later([offset >> self.header.cluster_bits])
        else:
            table = array.array("Q", bytes(self.cluster_size))
        self._cache_put(new, table)
        self._dirty_l2.add(new)
        self.l1[l1_index] = new | COPIED
        self._dirty_l1.add(l1_index)
        return new, table

    @staticmethod
    def _in_place(entry: int) -> bool:
        """A data cluster this image alone owns: written where it is."""
        return (not entry & (COMPRESSED | ZERO)) and bool(entry & OFFSET_MASK) and bool(
            entry & COPIED)

    def _drop(self, entry: int) -> None:
        """Queue the host clusters an L2 entry held for freeing."""
        refcounts = self.refcounts
        bits = self.header.cluster_bits
        if entry & COMPRESSED:
            host, count = self.geometry.compressed_extent(entry)
            refcounts.free_later(list(range(host >> bits, ((host + count - 1) >> bits) + 1)))
        elif entry & OFFSET_MASK:
            refcounts.free_later([(entry & OFFSET_MASK) >> bits])

    def _old_cluster(self, entry: int, guest: int, view: memoryview,
                     read_below: ReadBelow) -> None:
        """Fill ``view`` (one cluster) with what guest cluster ``guest`` reads now."""
        if entry & COMPRESSED:
            view[:] = self.read_compressed(entry)
        elif entry & ZERO:
            view[:] = bytes(len(view))
        elif entry & OFFSET_MASK:
            self.storage.readinto(entry & OFFSET_MASK, view)
        else:
            read_below(guest, view)

    def write(self, offset: int, data: memoryview, read_below: ReadBelow) -> None:
        """Write guest data; clusters this image does not own get new ones (COW)."""
        done = 0
        with self._lock:
            while done < len(data):
                done += self._write_step(offset + done, data[done:], read_below)
            self._maybe_write_back()

    def _write_step(self, position: int, data: memoryview, read_below: ReadBelow) -> int:
        place = self._place(position, len(data))
        bits = self.geometry.cluster_bits
        size = self.cluster_size
        within, step, count, host = place.within, place.step, place.clusters, place.host
        if place.in_place:
            self.storage.pwrite(host + within, data[:step])
            return step
        head = within != 0
        tail = (within + step) & (size - 1) != 0
        if not head and not tail:
            self.storage.pwrite(host, data[:step])
        else:
            buffer = bytearray(count << bits)
            view = memoryview(buffer)
            guest = position - within
            if head:
                self._old_cluster(place.table[place.l2_index], guest, view[:size], read_below)
            if tail and (count > 1 or not head):
                last = count - 1
                self._old_cluster(place.table[place.l2_index + last], guest + (last << bits),
                                  view[last << bits:(last + 1) << bits], read_below)
            view[within:within + step] = data[:step]
            self.storage.pwrite(host, view)
        self._install(place)
        return step

    def _place(self, position: int, length: int) -> _Placement:
        """Where the next step of a write at ``position`` goes (at most ``length``
        bytes, one L2 table, MAX_WRITE_STEP): the run of clusters this image owns
        there, written in place, or else the run of clusters it does not own, which
        gets new contiguous host clusters (allocated here, refcounts raised)."""
        geometry = self.geometry
        bits = geometry.cluster_bits
        size = self.cluster_size
        l1_index, l2_index, within = geometry.split(position)
        table_left = ((geometry.l2_entries - l2_index) << bits) - within
        length = min(length, table_left, MAX_WRITE_STEP)
        clusters = ((within + length - 1) >> bits) + 1
        table_offset, table = self._writable_table(l1_index)
        first = table[l2_index]
        if self._in_place(first):
            host = first & OFFSET_MASK
            count = 1
            while (count < clusters and self._in_place(table[l2_index + count])
                   and table[l2_index + count] & OFFSET_MASK == host + count * size):
                count += 1
            step = min(length, (count << bits) - within)
            self._spare_metadata(host + within, step)
            return _Placement(table_offset, table, l2_index, within, step, count, host, True)
        entries = table[l2_index:l2_index + clusters]
        if entries.count(0) == clusters:
            count = clusters  # nothing allocated there (the usual copy target)
        else:
            count = 1
            while count < clusters and not self._in_place(entries[count]):
                count += 1
        step = min(length, (count << bits) - within)
        host = self.refcounts.allocate(count)
        return _Placement(table_offset, table, l2_index, within, step, count, host, False)

    def _install(self, place: _Placement) -> None:
        """Point the L2 entries of a placed step at its new clusters (their data is
        in the file already); the clusters they held are freed later."""
        bits = self.geometry.cluster_bits
        first, end = place.l2_index, place.l2_index + place.clusters
        table = place.table
        old = table[first:end]
        if old.count(0) != len(old):
            for entry in old:
                if entry:
                    self._drop(entry)
        start = place.host | COPIED
        table[first:end] = array.array("Q", range(start, start + (place.clusters << bits),
                                                  1 << bits))
        self._dirty_l2.add(place.table_offset)

    def write_direct(self, offset: int, length: int, fill: Fill, read_below: ReadBelow) -> None:
        """Write a guest range whose bytes ``fill`` puts into the image file itself.

        The copy engine's path into qcow2 (no Python buffers): clusters this image
        owns get their bytes where they are; the others get a new contiguous run of
        host clusters, into which the old bytes of partly written clusters are
        copied and ``fill`` puts the new ones, and only then do the L2 entries point
        at it, as :meth:`write` does.  If ``fill`` fails, the new run is freed again
        and no entry changes.  The lock is held throughout, so ``fill`` must not
        read through this image (give it host offsets found beforehand).
        """
        done = 0
        with self._lock:
            while done < length:
                done += self._direct_step(offset + done, length - done, fill, read_below)
            self._maybe_write_back()

    def _direct_step(self, position: int, length: int, fill: Fill,
                     read_below: ReadBelow) -> int:
        place = self._place(position, length)
        if place.in_place:
            fill(position, place.host + place.within, place.step)
            return place.step
        try:
            self._keep_old_edges(place, position, read_below)
            fill(position, place.host + place.within, place.step)
        except BaseException:
            first = place.host >> self.geometry.cluster_bits
            self.refcounts.free_later(list(range(first, first + place.clusters)))
            raise
        self._install(place)
        return place.step

    def _keep_old_edges(self, place: _Placement, position: int, read_below: ReadBelow) -> None:
        """Copy on write for a placed step: the bytes of its first and last clusters
        that it does not cover get what those clusters read now."""
        bits = self.geometry.cluster_bits
        size = self.cluster_size
        within, count, host = place.within, place.clusters, place.host
        tail = (within + place.step) & (size - 1)
        if not within and not tail:
            return
        view = memoryview(bytearray(size))
        guest = position - within
        if within:
            self._old_cluster(place.table[place.l2_index], guest, view, read_below)
            self.storage.pwrite(host, view[:within])
            if count == 1 and tail:
                self.storage.pwrite(host + tail, view[tail:])
        if tail and (count > 1 or not within):
            last = count - 1
            self._old_cluster(place.table[place.l2_index + last], guest + (last << bits), view,
                              read_below)
            self.storage.pwrite(host + (last << bits) + tail, view[tail:])

    def write_zeroes(self, offset: int, length: int, may_unmap: bool, has_backing: bool,
                     read_below: ReadBelow) -> None:
        """Make a guest range read as zeroes, with zero clusters where possible."""
        size = self.cluster_size
        end = offset + length
        with self._lock:
            head_end = min(end, -(-offset // size) * size)
            if head_end > offset:
                self.write(offset, memoryview(bytes(head_end - offset)), read_below)
            tail_start = max(head_end, end // size * size)
            position = head_end
            while position < tail_start:
                position += self._zero_step(position, tail_start - position, may_unmap,
                                            has_backing, read_below)
            if end > tail_start:
                self.write(tail_start, memoryview(bytes(end - tail_start)), read_below)
            self._maybe_write_back()

    def _zero_step(self, position: int, length: int, may_unmap: bool, has_backing: bool,
                   read_below: ReadBelow) -> int:
        """Whole clusters within one L2 table become zero (or unallocated) clusters."""
        geometry = self.geometry
        bits = geometry.cluster_bits
        l1_index, l2_index, _ = geometry.split(position)
        step = min(length, (geometry.l2_entries - l2_index) << bits)
        if self.header.version < 3 and has_backing:
            # Version 2 has no zero clusters: only written zeroes hide the backing.
            for start in range(position, position + step, MAX_WRITE_STEP):
                piece = min(MAX_WRITE_STEP, position + step - start)
                self.write(start, memoryview(bytes(piece)), read_below)
            return step
        if not has_backing and not l2_offset(self.l1[l1_index], l1_index, self.cluster_size):
            return step
        table_offset, table = self._writable_table(l1_index)
        for index in range(l2_index, l2_index + (step >> bits)):
            entry = table[index]
            if not has_backing and entry == 0:
                continue
            if self.header.version < 3:
                new = 0
            elif not may_unmap and self._in_place(entry):
                new = entry | ZERO
            else:
                new = ZERO
            if new != entry:
                if new & OFFSET_MASK != entry & OFFSET_MASK:
                    self._drop(entry)
                table[index] = new
                self._dirty_l2.add(table_offset)
        return step

    # Section: writing metadata back

    def _maybe_write_back(self) -> None:
        if len(self._dirty_l2) >= self._dirty_l2_limit:
            self.write_back()

    def write_back(self) -> None:
        """Put every changed table on disk in an order that is safe at any moment.

        Refcounts and data first (a crash leaves leaked clusters), then L2 tables,
        then L1 entries (a crash leaves an L2 table unreferenced: leaked), then the
        references of clusters nothing points at any more are dropped.  A sync
        separates each stage, so the order also holds across a power failure.
        """
        with self._lock:
            refcounts = self._refcounts
            if refcounts is None:
                return
            if not (refcounts.dirty() or self._dirty_l2 or self._dirty_l1
                    or refcounts.pending_frees):
                return
            refcounts.write_back()
            if self._dirty_l2 or self._dirty_l1:
                self.storage.flush()
                for offset in sorted(self._dirty_l2):
                    table = self._l2_cache[offset]
                    self.storage.pwrite(offset, encode_entries(table))
                self._dirty_l2.clear()
                if self._dirty_l1:
                    self.storage.flush()
                    self._write_l1(sorted(self._dirty_l1))
                    self._dirty_l1.clear()
            if refcounts.pending_frees:
                self.storage.flush()
                refcounts.apply_pending_frees()
                refcounts.write_back()

    def _write_l1(self, indexes: list[int]) -> None:
        """Write runs of consecutive changed L1 entries, one pwrite per run."""
        start = 0
        while start < len(indexes):
            stop = start + 1
            while stop < len(indexes) and indexes[stop] == indexes[stop - 1] + 1:
                stop += 1
            first, last = indexes[start], indexes[stop - 1]
            entries = self.l1[first:last + 1]
            self.storage.pwrite(self.header.l1_table_offset + 8 * first,
                                encode_entries(entries))
            start = stop

    def set_backing_file(self, name: str | None, fmt: str | None) -> None:
        """qcow2_change_backing_file: a new backing file name in the header.

        The tables go to disk first, then the header alone in cluster 0 (the
        header, its extensions and the name must fit there).
        """
        if name is not None and len(name.encode()) > hdr.MAX_BACKING_NAME:
            raise QMPError("Backing file name too long")
        with self._lock:
            self.write_back()
            header = self.header
            old = (header.backing_file, header.backing_format)
            header.backing_file, header.backing_format = name, fmt if name else None
            try:
                data = header.encode()
                self.storage.flush()
                self.storage.pwrite(0, data)
                self.storage.flush()
            except (QMPError, OSError):
                header.backing_file, header.backing_format = old
                header.encode()  # the offsets it keeps, back to the old name's
                raise

    # Section: internal snapshots

    def create_snapshot(self, name: str) -> snap.Snapshot:
        """Add a disk-only snapshot of the image as it is now (qcow2_snapshot_create).

        The active L1 table becomes the snapshot's, and the image goes on with a
        copy; see :mod:`qjobd.block.qcow2.shadow` for how the change stays atomic.
        """
        with self._lock:
            if len(self.snapshots) >= snap.MAX_SNAPSHOTS:
                raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
            self.write_back()
            entry = snap.new(self.snapshots, name, l1_table_offset=self.header.l1_table_offset,
                             l1_size=len(self.l1), disk_size=self.size)
            self._switch_tables(active=self.l1, snapshots=[*self.snapshots, entry],
                                dropped=[])
            return self.snapshots[-1]

    def load_snapshot(self, snapshot: snap.Snapshot) -> None:
        """Make the image read as it did when ``snapshot`` was taken (the active
        tables are replaced by the snapshot's; the snapshot stays)."""
        with self._lock:
            snapshot = self._current(snapshot)
            entries = self._snapshot_l1(snapshot)
            if snapshot.disk_size != self.size:
                raise OSError(errno.ENOTSUP, "qjobd does not load a snapshot whose disk "
                                             "size differs from the image's")
            entries.extend([0] * (len(self.l1) - len(entries)))
            self.write_back()
            self._switch_tables(active=entries, snapshots=self.snapshots,
                                dropped=[(self.header.l1_table_offset, self.l1)])

    def delete_snapshot(self, snapshot: snap.Snapshot) -> None:
        """Remove ``snapshot``; clusters only it used are freed."""
        with self._lock:
            snapshot = self._current(snapshot)
            entries = self._snapshot_l1(snapshot)
            self.write_back()
            kept = [other for other in self.snapshots if other is not snapshot]
            self._switch_tables(active=self.l1, snapshots=kept,
                                dropped=[(snapshot.l1_table_offset, entries),
                                         (self.header.l1_table_offset, self.l1)])

    def grow(self, size: int) -> None:
        """qcow2_co_truncate to a larger size: a bigger active L1 if the new size
        needs one, and the new size, in one header switch."""
        if size % 512:
            raise QMPError("The new size must be a multiple of 512")
        if self.header.version < 3 and self.snapshots:
            raise QMPError("Can't resize a v2 image which has snapshots")
        with self._lock:
            self.write_back()
            span = self.cluster_size << self.geometry.l2_bits
            needed = -(-size // span)
            active = array.array("Q", self.l1)
            active.extend([0] * (needed - len(active)))
            switch = shadow.plan(self._layout(), active=active, snapshots=self.snapshots,
                                 dropped=[(self.header.l1_table_offset, self.l1)])
            switch.size = size
            self._perform(switch)

    def _current(self, snapshot: snap.Snapshot) -> snap.Snapshot:
        """The entry of the table now that stands for ``snapshot`` (the table is read
        again after every switch, so callers may hold an older copy)."""
        for entry in self.snapshots:
            if (entry.id, entry.name, entry.l1_table_offset) == (
                    snapshot.id, snapshot.name, snapshot.l1_table_offset):
                return entry
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))

    def _snapshot_l1(self, snapshot: snap.Snapshot) -> array.array[int]:
        hdr.validate_table(snapshot.l1_table_offset, snapshot.l1_size, 8, hdr.MAX_L1_BYTES,
                           "Snapshot L1 table", self.cluster_size)
        return self._read_entries(snapshot.l1_table_offset, snapshot.l1_size)

    def _read_entries(self, offset: int, count: int) -> array.array[int]:
        """Table entries at a host offset: a cached L2 table, or read from disk."""
        cached = self._l2_cache.get(offset)
        if cached is not None and len(cached) == count:
            return cached
        return decode_entries(self.storage.pread(offset, 8 * count))

    def _switch_tables(self, *, active: array.array[int], snapshots: list[snap.Snapshot],
                       dropped: list[tuple[int, array.array[int]]]) -> None:
        """Plan the new tables (shadow.py) and put them in place."""
        switch = shadow.plan(self._layout(), active=active, snapshots=snapshots,
                             dropped=dropped)
        self._perform(switch)

    def _layout(self) -> shadow.Layout:
        """The tables as they are on disk (callers wrote everything back)."""
        header = self.header
        return shadow.Layout(
            geometry=self.geometry, size=header.size, crypt_method=header.crypt_method,
            l1=self.l1, l1_offset=header.l1_table_offset,
            snapshots=self.snapshots,
            snapshot_table=(header.snapshots_offset,
                            self._snapshot_table_bytes if header.nb_snapshots else 0),
            refcounts=self.refcounts, read_entries=self._read_entries)

    def _perform(self, switch: shadow.Switch) -> None:
        """Write the planned tables, make them durable, then switch the header."""
        for offset, data in switch.writes:
            self.storage.pwrite(offset, data)
        self.storage.flush()
        try:
            self.storage.pwrite(shadow.HEADER_POINTERS_OFFSET, switch.header_pointers())
            self.storage.flush()
        finally:
            self._reload_tables()

    def _reload_tables(self) -> None:
        """Read the header and every table again, after the header changed under
        the caches (or might have, when a write failed)."""
        header = hdr.parse(self.storage.pread, writable=True)
        self.header = header
        self.l1 = decode_entries(self.storage.pread(header.l1_table_offset,
                                                    8 * header.l1_size))
        self.snapshots, self._snapshot_table_bytes = snap.parse(
            self.storage.pread, header.snapshots_offset, header.nb_snapshots, header.size)
        self._l2_cache.clear()
        self._dirty_l2.clear()
        self._dirty_l1.clear()
        self._load_refcounts()

    # Section: compressed clusters

    def read_compressed(self, entry: int) -> bytes:
        """The cluster a compressed L2 entry stands for, decompressed."""
        host, count = self.geometry.compressed_extent(entry)
        data = self.storage.pread(host, count)
        size = self.cluster_size
        if self._zstd is not None:
            out = self._zstd(data, size)
        else:
            try:
                inflater = zlib.decompressobj(-15)
                out = inflater.decompress(data, size)
            except zlib.error:
                out = b""
        if len(out) != size:
            raise _eio(f"compressed cluster at {host:#x} does not decompress")
        return out


def _zstd_decompressor() -> _Decompress:
    try:
        import zstandard
    except ImportError:
        raise QMPError("This qcow2 image uses zstd compression; qjobd reads it only "
                       "with the Python package 'zstandard' installed") from None

    def decompress(data: bytes, size: int) -> bytes:
        try:
            inflater = zstandard.ZstdDecompressor().decompressobj()
            return bytes(inflater.decompress(data)[:size])
        except zstandard.ZstdError:
            return b""

    return decompress


class _Decompress(Protocol):
    def __call__(self, data: bytes, size: int, /) -> bytes: ...

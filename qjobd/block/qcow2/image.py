"""One open qcow2 image: its header, L1 table, a bounded L2 cache and translation.

This is the format's logic without the block graph: it reads and writes the image
file through a small :class:`Storage` interface (the node's ``file`` child), and
answers "what is at this guest offset" as :class:`~qjobd.block.qcow2.tables.Run`
records.  Worker threads call it concurrently, so the caches sit behind one lock;
data I/O happens outside it.
"""

from __future__ import annotations

import collections
import errno
import os
import struct
import threading
import zlib
from typing import Final, Protocol

from qjobd.block.qcow2 import header as hdr
from qjobd.block.qcow2 import snapshots as snap
from qjobd.block.qcow2.tables import CorruptEntry, Geometry, Run, l2_offset, run_in_table
from qjobd.errors import QMPError

#: Bytes of L2 tables kept in memory per image.  QEMU's default covers 32 MiB of
#: guest per MiB of cache at 64 KiB clusters; 8 MiB covers 64 GiB of guest at
#: 64 KiB clusters and is still modest next to the daemon's other memory.
L2_CACHE_BYTES: Final = 8 << 20


class Storage(Protocol):
    """What the image needs from the file under it (a BlockNode fits)."""

    def pread(self, offset: int, length: int) -> bytes: ...

    def readinto(self, offset: int, buffer: memoryview) -> None: ...

    def length(self) -> int: ...


def _eio(message: str) -> OSError:
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)} ({message})")


class Qcow2Image:
    """See the module docstring.  Raises QMPError from the constructor with QEMU's
    message when the image cannot be opened."""

    def __init__(self, storage: Storage, *, writable: bool) -> None:
        self.storage = storage
        self.header = hdr.parse(storage.pread, writable=writable)
        header = self.header
        self.geometry = Geometry(header.cluster_bits, header.extended_l2)
        raw_l1 = storage.pread(header.l1_table_offset, 8 * header.l1_size)
        self.l1: list[int] = list(struct.unpack(f">{header.l1_size}Q", raw_l1))
        self.snapshots = snap.parse(storage.pread, header.snapshots_offset,
                                    header.nb_snapshots, header.size)
        self._lock = threading.Lock()
        self._l2_cache: collections.OrderedDict[int, list[int]] = (
            collections.OrderedDict())
        self._l2_cache_limit = max(4, L2_CACHE_BYTES >> header.cluster_bits)
        self._zstd = None
        if header.compression_type == hdr.COMPRESSION_ZSTD:
            self._zstd = _zstd_decompressor()

    @property
    def size(self) -> int:
        return self.header.size

    @property
    def cluster_size(self) -> int:
        return self.header.cluster_size

    # Section: translation

    def _l2_table(self, l1_index: int) -> list[int] | None:
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
        table = list(struct.unpack(f">{self.cluster_size // 8}Q", raw))
        with self._lock:
            self._l2_cache[offset] = table
            while len(self._l2_cache) > self._l2_cache_limit:
                self._l2_cache.popitem(last=False)
        return table

    def map(self, offset: int, length: int) -> Run:
        """The first run of the guest range (never past one L2 table's range)."""
        l1_index = offset >> (self.geometry.cluster_bits + self.geometry.l2_bits)
        table = self._l2_table(l1_index)
        try:
            return run_in_table(table, self.geometry, offset, length)
        except CorruptEntry as exc:
            raise _eio(str(exc)) from None

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

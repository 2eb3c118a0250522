"""New qcow2 images: blockdev-create's checks in QEMU's order, then the layout.

The layout is QEMU's: the header in cluster 0, a one-cluster refcount table in
cluster 1, its first refcount block in cluster 2, then the L1 table; with
``preallocation`` the L2 tables and data clusters follow.  Everything past the
first three clusters is allocated through :class:`Refcounts`, so any size and
cluster size get enough refcount blocks.  The image is written through a Storage
(the ``file`` node), so blockdev-create works on any node qjobd can write.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs

from qjobd.block import _host
from qjobd.block.file import open_error
from qjobd.block.node import BlockNode
from qjobd.block.qcow2 import header as hdr
from qjobd.block.qcow2.image import Storage
from qjobd.block.qcow2.refcounts import Refcounts
from qjobd.block.qcow2.tables import COPIED
from qjobd.errors import QMPError

DEFAULT_CLUSTER_SIZE: Final = 64 << 10
PREALLOCATION_MODES: Final = ("off", "metadata", "falloc", "full")
_ZERO_PIECE: Final = 4 << 20


@attrs.define
class Qcow2Spec:
    """What a new image is to be, after QEMU's defaults."""

    size: int
    version: int = 3
    cluster_size: int = DEFAULT_CLUSTER_SIZE
    backing_file: str | None = None
    backing_format: str | None = None
    lazy_refcounts: bool = False
    refcount_bits: int = 16
    preallocation: str = "off"
    extended_l2: bool = False
    compression_type: str = "zlib"


def check_spec(spec: Qcow2Spec) -> None:
    """qcow2_co_create's validation, same order and texts; raises QMPError."""
    if spec.size % 512:
        raise QMPError("Image size must be a multiple of 512 bytes")
    if spec.extended_l2 and spec.version < 3:
        raise QMPError("Extended L2 entries are only supported with compatibility level "
                       "1.1 and above (use version=v3 or greater)")
    size = spec.cluster_size
    if size < 512 or size > 2 << 20 or size & (size - 1):
        raise QMPError("Cluster size must be a power of two between 512 and 2048k")
    if spec.extended_l2 and size < 16384:
        raise QMPError("Extended L2 entries are only supported with cluster sizes of at "
                       "least 16384 bytes")
    if spec.backing_file is not None and spec.preallocation != "off" \
            and not spec.extended_l2:
        raise QMPError("Backing file and preallocation can only be used at the same "
                       "time if extended_l2 is on")
    if spec.backing_format is not None and spec.backing_file is None:
        raise QMPError("Backing format cannot be used without backing file")
    if spec.version < 3 and spec.lazy_refcounts:
        raise QMPError("Lazy refcounts only supported with compatibility level 1.1 and "
                       "above (use version=v3 or greater)")
    bits = spec.refcount_bits
    if bits > 64 or bits <= 0 or bits & (bits - 1):
        raise QMPError("Refcount width must be a power of two and may not exceed 64 "
                       "bits")
    if spec.version < 3 and bits != 16:
        raise QMPError("Different refcount widths than 16 bits require compatibility "
                       "level 1.1 or above (use version=v3 or greater)")
    if spec.compression_type != "zlib" and spec.version < 3:
        raise QMPError("Non-zlib compression type is only supported with compatibility "
                       "level 1.1 and above (use version=v3 or greater)")
    # What qjobd cannot make (QEMU can): a clear refusal naming the feature.
    if bits != 16:
        raise QMPError(f"qjobd creates qcow2 images with 16-bit refcounts only "
                       f"(refcount-bits {bits} asked)")
    if spec.extended_l2:
        raise QMPError("qjobd does not create qcow2 images with extended L2 entries")
    if spec.compression_type != "zlib":
        raise QMPError(f"qjobd does not create qcow2 images with "
                       f"{spec.compression_type} compression")
    if spec.preallocation not in PREALLOCATION_MODES:
        raise QMPError(f"Unsupported preallocation mode '{spec.preallocation}'")


def create_image(storage: Storage, spec: Qcow2Spec,
                 write_zeroes: Callable[[int, int], None] | None = None) -> None:
    """Write a new, empty image of ``spec`` over whatever ``storage`` holds.

    ``write_zeroes(offset, length)`` allocates zeroed space for falloc
    preallocation (without it, zeroes are written as for full).
    """
    check_spec(spec)
    cluster_bits = spec.cluster_size.bit_length() - 1
    cluster = spec.cluster_size
    header = hdr.Header(
        version=spec.version, backing_file_offset=0, backing_file_size=0,
        cluster_bits=cluster_bits, size=spec.size, crypt_method=0, l1_size=0,
        l1_table_offset=0, refcount_table_offset=cluster, refcount_table_clusters=1,
        nb_snapshots=0, snapshots_offset=0,
        compatible_features=hdr.COMPAT_LAZY_REFCOUNTS if spec.lazy_refcounts else 0,
        header_length=hdr.V3_WRITTEN_LENGTH if spec.version >= 3 else hdr.V2_HEADER_LENGTH,
        backing_file=spec.backing_file, backing_format=spec.backing_format)
    # Header, refcount table (entry 0 -> cluster 2) and its first block, counting
    # clusters 0-2, written before anything names them.
    first_block = bytearray(cluster)
    for index in range(3):
        struct.pack_into(">H", first_block, 2 * index, 1)
    storage.pwrite(cluster, struct.pack(">Q", 2 * cluster) + bytes(cluster - 8))
    storage.pwrite(2 * cluster, first_block)
    refcounts = Refcounts(
        cluster_bits=cluster_bits, refcount_order=4, table_offset=cluster,
        table_clusters=1, file_length=3 * cluster, read_at=storage.pread,
        write_at=storage.pwrite, sync=storage.flush)

    def table_moved(offset: int, clusters: int) -> None:
        header.refcount_table_offset = offset
        header.refcount_table_clusters = clusters

    refcounts.on_table_moved = table_moved
    l1_size = header.l1_entries_needed()
    l1: list[int] = [0] * l1_size
    if l1_size:
        header.l1_table_offset = refcounts.allocate(-(-l1_size * 8 // cluster))
        header.l1_size = l1_size
    if spec.preallocation != "off":
        _preallocate(storage, refcounts, header, l1, spec, write_zeroes)
    refcounts.write_back()
    if l1_size:
        storage.pwrite(header.l1_table_offset, struct.pack(f">{l1_size}Q", *l1))
    storage.flush()
    refusal = _backing_refusal(header)
    if refusal is not None:
        header.backing_file = header.backing_format = None
    storage.pwrite(0, header.encode())
    storage.flush()
    if refusal is not None:
        raise QMPError(f"Could not assign backing file '{spec.backing_file}' with format "
                       f"'{spec.backing_format or '(null)'}': {refusal}")


def _backing_refusal(header: hdr.Header) -> str | None:
    """Why the header cannot name its backing file, or None.

    QEMU makes the image first and names the backing file afterwards
    (qcow2_change_backing_file): a name longer than QEMU reads back, or one that
    does not fit in the header cluster, fails the creation but leaves a valid
    image without a backing file - never a header QEMU cannot open.
    """
    if not header.backing_file:
        return None
    if len(header.backing_file.encode()) > hdr.MAX_BACKING_NAME:
        return os.strerror(errno.EINVAL)
    try:
        header.encode()
    except QMPError:
        return os.strerror(errno.ENOSPC)
    return None


def _preallocate(storage: Storage, refcounts: Refcounts, header: hdr.Header,
                 l1: list[int], spec: Qcow2Spec,
                 write_zeroes: Callable[[int, int], None] | None) -> None:
    """L2 tables and data clusters for the whole size, as QEMU's metadata mode.

    The data clusters lie past the end of the file, which reads as zeroes, so the
    image still reads as zeroes; falloc and full also allocate them on the host.
    """
    cluster = header.cluster_size
    entries = cluster // 8
    remaining = -(-header.size // cluster)
    for l1_index in range(len(l1)):
        count = min(entries, remaining)
        remaining -= count
        table_offset = refcounts.allocate(1)
        data = refcounts.allocate(count)
        table = [(data + index * cluster) | COPIED for index in range(count)]
        table += [0] * (entries - count)
        storage.pwrite(table_offset, struct.pack(f">{entries}Q", *table))
        l1[l1_index] = table_offset | COPIED
        if spec.preallocation == "falloc" and write_zeroes is not None:
            write_zeroes(data, count * cluster)
        elif spec.preallocation in ("falloc", "full"):
            for start in range(0, count * cluster, _ZERO_PIECE):
                piece = min(_ZERO_PIECE, count * cluster - start)
                storage.pwrite(data + start, bytes(piece))
    end = refcounts.next_free * cluster
    if storage.length() < end:
        # The last data clusters must exist in the file for qemu-img check.
        storage.pwrite(end - 1, b"\0")


def spec_from_options(options: Any) -> Qcow2Spec:
    """BlockdevCreateOptionsQcow2 (the model object) as a spec with QEMU's defaults."""
    spec = Qcow2Spec(size=options.size)
    if options.version is not None:
        spec.version = 2 if options.version.value == "v2" else 3
    if options.cluster_size is not None:
        spec.cluster_size = options.cluster_size
    spec.backing_file = options.backing_file
    if options.backing_fmt is not None:
        spec.backing_format = options.backing_fmt.value
    spec.lazy_refcounts = bool(options.lazy_refcounts)
    if options.refcount_bits is not None:
        spec.refcount_bits = options.refcount_bits
    if options.preallocation is not None:
        spec.preallocation = options.preallocation.value
    spec.extended_l2 = bool(options.extended_l2)
    if options.compression_type is not None:
        spec.compression_type = options.compression_type.value
    return spec


class _FileStorage:
    """A bare file as Storage, for images created before any node exists."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def pread(self, offset: int, length: int) -> bytes:
        buffer = bytearray(length)
        got = _host.pread_full(self.fd, memoryview(buffer), offset)
        return bytes(buffer[:got]) + bytes(length - got)

    def readinto(self, offset: int, buffer: memoryview) -> None:
        got = _host.pread_full(self.fd, buffer, offset)
        buffer[got:] = bytes(len(buffer) - got)

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        _host.pwrite_full(self.fd, data, offset)

    def flush(self) -> None:
        os.fdatasync(self.fd)

    def length(self) -> int:
        return os.fstat(self.fd).st_size


def create_file_image(path: str, size: int, backing_file: str | None = None,
                      backing_format: str | None = None) -> None:
    """A new qcow2 file at ``path`` (replacing what was there), as bdrv_img_create
    makes drive-backup's and drive-mirror's targets."""
    spec = Qcow2Spec(size=size, backing_file=backing_file, backing_format=backing_format)
    check_spec(spec)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise open_error(path, error, "create") from error
    try:
        create_image(_FileStorage(fd), spec)
    except OSError as error:
        raise QMPError(f"Could not create image: "
                       f"{os.strerror(error.errno or errno.EIO)}") from error
    finally:
        os.close(fd)


class NodeRefs(Protocol):
    """How blockdev-create reaches the node it writes (the block graph)."""

    def open_ref(self, ref: Any) -> BlockNode: ...

    def release_implicit(self, node: BlockNode) -> None: ...


class Qcow2Creation:
    """blockdev-create with the ``qcow2`` driver: the file node, checked, written."""

    def __init__(self, options: Any, nodes: NodeRefs) -> None:
        self._options = options
        self._nodes = nodes
        self._spec = spec_from_options(options)
        self._file: BlockNode | None = None

    def check(self) -> None:
        """bdrv_open_blockdev_ref, then the option checks, then write permission."""
        node = self._nodes.open_ref(self._options.file)
        self._file = node
        check_spec(self._spec)
        if node.read_only:
            raise QMPError("Block node is read-only")

    def create(self) -> None:
        node = self._file
        assert node is not None

        def allocate_zeroes(offset: int, length: int) -> None:
            node.write_zeroes(offset, length, may_unmap=False)

        try:
            create_image(node, self._spec, allocate_zeroes)
        except OSError as error:
            raise QMPError(f"Could not write qcow2 header: "
                           f"{os.strerror(error.errno or errno.EIO)}") from error

    def close(self) -> None:
        if self._file is not None:
            self._nodes.release_implicit(self._file)
            self._file = None

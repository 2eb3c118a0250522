"""The qcow2 header and its extensions: parsing with QEMU's checks, and serialising.

Parsing follows the order of QEMU 7.2's qcow2_do_open, because that order decides
which message a broken image gets, and those messages are part of what a client sees
(qemu-storage-daemon passes them through blockdev-add unchanged).  Everything that
the header says about the image's shape is computed once here, so the table code
never re-derives bit widths.

Extensions that qjobd does not interpret (and the bytes of header fields newer than
it knows) are kept verbatim so that rewriting the header cannot lose them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

import attrs

from qjobd.block.qcow2.tables import Geometry
from qjobd.errors import QMPError

MAGIC: Final = b"QFI\xfb"
V2_HEADER_LENGTH: Final = 72
V3_HEADER_LENGTH: Final = 104
#: The header qjobd writes for version 3: 104 bytes, the compression type and padding.
V3_WRITTEN_LENGTH: Final = 112
MIN_CLUSTER_BITS: Final = 9
MAX_CLUSTER_BITS: Final = 21
MAX_REFTABLE_BYTES: Final = 8 << 20
MAX_L1_BYTES: Final = 32 << 20
SNAPSHOT_HEADER_SIZE: Final = 40
MAX_SNAPSHOTS: Final = 65536
#: bs->backing_file is 4096 bytes and QEMU reads at most 1023 of them.
MAX_BACKING_NAME: Final = 1023
#: bs->backing_format is 16 bytes including the NUL.
MAX_BACKING_FORMAT: Final = 15

# Incompatible feature bits.
INCOMPAT_DIRTY: Final = 1 << 0
INCOMPAT_CORRUPT: Final = 1 << 1
INCOMPAT_DATA_FILE: Final = 1 << 2
INCOMPAT_COMPRESSION: Final = 1 << 3
INCOMPAT_EXTL2: Final = 1 << 4
INCOMPAT_KNOWN: Final = 0x1F
# Compatible and autoclear bits.
COMPAT_LAZY_REFCOUNTS: Final = 1 << 0
AUTOCLEAR_BITMAPS: Final = 1 << 0
AUTOCLEAR_DATA_FILE_RAW: Final = 1 << 1
AUTOCLEAR_KNOWN: Final = 0x3

# Header extension types.
EXT_END: Final = 0
EXT_BACKING_FORMAT: Final = 0xE2792ACA
EXT_FEATURE_TABLE: Final = 0x6803F857
EXT_BITMAPS: Final = 0x23852875
EXT_CRYPTO: Final = 0x0537BE77
EXT_DATA_FILE: Final = 0x44415441

CRYPT_AES: Final = 1
CRYPT_LUKS: Final = 2

COMPRESSION_ZLIB: Final = 0
COMPRESSION_ZSTD: Final = 1

_V2: Final = struct.Struct(">4sIQIIQIIQQIIQ")
_V3_EXTRA: Final = struct.Struct(">QQQII")
_INT64_MAX: Final = (1 << 63) - 1

#: The feature names qjobd writes into new images (QEMU writes the same table).
FEATURE_NAMES: Final = (
    (0, 0, "dirty bit"),
    (0, 1, "corrupt bit"),
    (0, 2, "external data file"),
    (0, 3, "compression type"),
    (0, 4, "extended L2 entries"),
    (1, 0, "lazy refcounts"),
    (2, 0, "bitmaps"),
    (2, 1, "raw external data"),
)


@attrs.define
class Extension:
    """One header extension, kept as its raw bytes."""

    kind: int
    data: bytes


@attrs.define
class Header:
    """Every header field, decoded; see docs/interop/qcow2.txt for their meaning."""

    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible_features: int = 0
    compatible_features: int = 0
    autoclear_features: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER_LENGTH
    compression_type: int = COMPRESSION_ZLIB
    #: Header bytes past the fields above (a newer QEMU's), kept as they are.
    unknown_fields: bytes = b""
    extensions: list[Extension] = attrs.field(factory=list)
    backing_file: str | None = None
    backing_format: str | None = None

    # Section: derived shape

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def extended_l2(self) -> bool:
        return bool(self.incompatible_features & INCOMPAT_EXTL2)

    @property
    def geometry(self) -> Geometry:
        """The shape the address translation needs (table sizes, entry widths)."""
        return Geometry(self.cluster_bits, self.extended_l2)

    @property
    def refcount_bits(self) -> int:
        return 1 << self.refcount_order

    @property
    def dirty(self) -> bool:
        return bool(self.incompatible_features & INCOMPAT_DIRTY)

    @property
    def corrupt(self) -> bool:
        return bool(self.incompatible_features & INCOMPAT_CORRUPT)

    @property
    def lazy_refcounts(self) -> bool:
        return bool(self.compatible_features & COMPAT_LAZY_REFCOUNTS)

    def l1_entries_needed(self) -> int:
        """size_to_l1: L1 entries that cover the virtual size."""
        shift = self.cluster_bits + self.geometry.l2_bits
        return (self.size + (1 << shift) - 1) >> shift

    def extension(self, kind: int) -> bytes | None:
        for ext in self.extensions:
            if ext.kind == kind:
                return ext.data
        return None

    # Section: serialising

    def encode(self) -> bytes:
        """The header, its extensions and the backing file name, as on disk.

        The backing file name follows the extensions, as QEMU places it;
        ``backing_file_offset`` and ``backing_file_size`` are recomputed.
        """
        extensions = bytearray()
        for ext in self._written_extensions():
            extensions += struct.pack(">II", ext.kind, len(ext.data))
            extensions += ext.data + bytes(-len(ext.data) % 8)
        extensions += struct.pack(">II", EXT_END, 0)
        if self.version == 2:
            length = V2_HEADER_LENGTH
        else:
            length = max(self.header_length, V3_WRITTEN_LENGTH)
        name = (self.backing_file or "").encode()
        self.backing_file_offset = length + len(extensions) if name else 0
        self.backing_file_size = len(name)
        fixed = _V2.pack(
            MAGIC, self.version, self.backing_file_offset, self.backing_file_size,
            self.cluster_bits, self.size, self.crypt_method, self.l1_size,
            self.l1_table_offset, self.refcount_table_offset,
            self.refcount_table_clusters, self.nb_snapshots, self.snapshots_offset)
        if self.version >= 3:
            self.header_length = length
            fixed += _V3_EXTRA.pack(
                self.incompatible_features, self.compatible_features,
                self.autoclear_features, self.refcount_order, length)
            fixed += bytes([self.compression_type]) + bytes(7)
            fixed += self.unknown_fields
            fixed = fixed[:length] + bytes(length - len(fixed))
        data = fixed + bytes(extensions) + name
        if len(data) > self.cluster_size:
            raise QMPError("Header and extensions do not fit in one cluster")
        return data

    def _written_extensions(self) -> list[Extension]:
        """Extensions in QEMU's order: backing format, feature table, the rest.

        Like QEMU, images with clusters of 4 KiB or less get no feature table: in a
        512-byte header cluster it would leave no room for a backing file name.
        """
        ordered = []
        if self.backing_format:
            ordered.append(Extension(EXT_BACKING_FORMAT, self.backing_format.encode()))
        if self.version >= 3 and self.cluster_size > 4096:
            ordered.append(Extension(EXT_FEATURE_TABLE, feature_table()))
        ordered.extend(ext for ext in self.extensions
                       if ext.kind not in (EXT_BACKING_FORMAT, EXT_FEATURE_TABLE))
        return ordered


def feature_table() -> bytes:
    """The feature name table extension's payload (48 bytes per feature)."""
    return b"".join(struct.pack(">BB46s", kind, bit, name.encode())
                    for kind, bit, name in FEATURE_NAMES)


def _feature_names(data: bytes | None) -> list[tuple[int, int, str]]:
    if not data:
        return []
    names = []
    for pos in range(0, len(data) - 47, 48):
        kind, bit, raw = struct.unpack_from(">BB46s", data, pos)
        names.append((kind, bit, raw.split(b"\0", 1)[0].decode(errors="replace")))
    return names


def validate_table(offset: int, entries: int, entry_len: int, max_bytes: int,
                   name: str, cluster_size: int) -> None:
    """qcow2_validate_table: size first, then offset alignment and range."""
    if entries > max_bytes // entry_len:
        raise QMPError(f"{name} too large")
    if _INT64_MAX - entries * entry_len < offset or offset % cluster_size:
        raise QMPError(f"{name} offset invalid")


#: Reads ``length`` bytes at an offset of the image file (zeroes past its end).
ReadAt = Callable[[int, int], bytes]


def parse(read_at: ReadAt, *, writable: bool) -> Header:
    """Decode and check the header as qcow2_do_open does; raises QMPError."""
    raw = read_at(0, V2_HEADER_LENGTH + _V3_EXTRA.size + 8)
    (magic, version, backing_offset, backing_size, cluster_bits, size, crypt_method,
     l1_size, l1_offset, reftable_offset, reftable_clusters, nb_snapshots,
     snapshots_offset) = _V2.unpack_from(raw)
    if magic != MAGIC:
        raise QMPError("Image is not in qcow2 format")
    if version not in (2, 3):
        raise QMPError(f"Unsupported qcow2 version {version}")
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise QMPError(f"Unsupported cluster size: 2^{cluster_bits}")
    header = Header(version, backing_offset, backing_size, cluster_bits, size,
                    crypt_method, l1_size, l1_offset, reftable_offset,
                    reftable_clusters, nb_snapshots, snapshots_offset)
    cluster_size = header.cluster_size
    if version == 3:
        (header.incompatible_features, header.compatible_features,
         header.autoclear_features, header.refcount_order,
         header.header_length) = _V3_EXTRA.unpack_from(raw, V2_HEADER_LENGTH)
        if header.header_length < V3_HEADER_LENGTH:
            raise QMPError("qcow2 header too short")
    if header.header_length > cluster_size:
        raise QMPError("qcow2 header exceeds cluster size")
    if header.header_length > V3_HEADER_LENGTH:
        header.compression_type = raw[V3_HEADER_LENGTH]
        if header.header_length > V3_WRITTEN_LENGTH:
            header.unknown_fields = read_at(
                V3_WRITTEN_LENGTH, header.header_length - V3_WRITTEN_LENGTH)
    if backing_offset > cluster_size:
        raise QMPError("Invalid backing file offset")
    ext_end = backing_offset or cluster_size

    _check_compression(header)
    unknown = header.incompatible_features & ~INCOMPAT_KNOWN
    if unknown:
        table = _feature_names(_read_extensions_quietly(read_at, header, ext_end))
        raise QMPError("Unsupported qcow2 feature(s): " + _describe(unknown, table))
    if header.corrupt and writable:
        raise QMPError("qcow2: Image is corrupt; cannot be opened read/write")
    if header.refcount_order > 6:
        raise QMPError("Reference count entry width too large; may not exceed 64 bits")
    if header.refcount_table_clusters == 0:
        raise QMPError("Image does not contain a reference count table")
    validate_table(reftable_offset, reftable_clusters, cluster_size, MAX_REFTABLE_BYTES,
                   "Reference count table", cluster_size)
    validate_table(snapshots_offset, nb_snapshots, SNAPSHOT_HEADER_SIZE,
                   SNAPSHOT_HEADER_SIZE * MAX_SNAPSHOTS, "Snapshot table", cluster_size)
    validate_table(l1_offset, l1_size, 8, MAX_L1_BYTES, "Active L1 table", cluster_size)
    if header.l1_entries_needed() > 0x7FFFFFFF:
        raise QMPError("Image is too big")
    if l1_size < header.l1_entries_needed():
        raise QMPError("L1 table is too small")

    # qcow2_update_options: the encryption options come before the extensions.
    if crypt_method == CRYPT_AES:
        raise QMPError("Parameter 'encrypt.key-secret' is required for cipher")
    if crypt_method not in (0, CRYPT_LUKS):
        raise QMPError(f"Unsupported encryption method {crypt_method}")
    _read_extensions(read_at, header, ext_end)
    if header.incompatible_features & INCOMPAT_DATA_FILE:
        raise QMPError("'data-file' is required for this image")
    if header.autoclear_features & AUTOCLEAR_DATA_FILE_RAW:
        raise QMPError("data-file-raw requires a data file")
    if crypt_method == CRYPT_LUKS:
        if header.extension(EXT_CRYPTO) is None:
            raise QMPError(f"Missing CRYPTO header for crypt method {crypt_method}")
        raise QMPError("qjobd does not open encrypted qcow2 images (LUKS)")
    if backing_offset:
        if backing_size > min(MAX_BACKING_NAME, cluster_size - backing_offset):
            raise QMPError("Backing file name too long")
        header.backing_file = read_at(backing_offset, backing_size).decode(
            "utf-8", errors="surrogateescape")
    return header


def _check_compression(header: Header) -> None:
    """validate_compression_type."""
    kind = header.compression_type
    if kind not in (COMPRESSION_ZLIB, COMPRESSION_ZSTD):
        raise QMPError(f"qcow2: unknown compression type: {kind}")
    flagged = bool(header.incompatible_features & INCOMPAT_COMPRESSION)
    if kind == COMPRESSION_ZLIB and flagged:
        raise QMPError("qcow2: Compression type incompatible feature bit must not be "
                       "set")
    if kind != COMPRESSION_ZLIB and not flagged:
        raise QMPError("qcow2: Compression type incompatible feature bit must be set")


def _describe(mask: int, table: list[tuple[int, int, str]]) -> str:
    """report_unsupported_feature: named bits from the image's table, then the rest."""
    parts = []
    for kind, bit, name in table:
        if kind == 0 and mask & (1 << bit):
            parts.append(name[:46])
            mask &= ~(1 << bit)
    if mask:
        parts.append(f"Unknown incompatible feature: {mask:x}")
    return ", ".join(parts)


def _walk_extensions(read_at: ReadAt, header: Header,
                     end: int) -> list[tuple[int, bytes]]:
    """The (kind, data) pairs up to the end marker; raises QMPError when too large."""
    found = []
    offset = header.header_length
    while offset < end:
        kind, length = struct.unpack(">II", read_at(offset, 8))
        offset += 8
        if offset > end or length > end - offset:
            raise QMPError("Header extension too large")
        if kind == EXT_END:
            break
        found.append((kind, read_at(offset, length)))
        offset += (length + 7) & ~7
    return found


def _read_extensions_quietly(read_at: ReadAt, header: Header, end: int) -> bytes | None:
    """The feature table for an error message; a broken extension area gives none."""
    table = None
    try:
        for kind, data in _walk_extensions(read_at, header, end):
            if kind == EXT_FEATURE_TABLE:
                table = data
    except QMPError:
        pass
    return table


def _read_extensions(read_at: ReadAt, header: Header, end: int) -> None:
    for kind, data in _walk_extensions(read_at, header, end):
        if kind == EXT_BACKING_FORMAT:
            if len(data) > MAX_BACKING_FORMAT:
                raise QMPError(f"ERROR: ext_backing_format: len={len(data)} too large "
                               f"(>={MAX_BACKING_FORMAT + 1})")
            header.backing_format = data.decode("utf-8", errors="surrogateescape")
        elif kind == EXT_CRYPTO and header.crypt_method != CRYPT_LUKS:
            raise QMPError("CRYPTO header extension only expected with LUKS encryption "
                           "method")
        elif kind != EXT_FEATURE_TABLE:
            # Bitmaps, data-file names and unknown kinds: kept for header rewrites.
            header.extensions.append(Extension(kind, data))

"""The ``qcow2`` format driver: a BlockNode over an image file and its backing chain.

The node translates guest requests through :class:`Qcow2Image` and sends the data
I/O to its ``file`` child in runs as long as the image layout allows; ranges the
image does not allocate come from the ``backing`` child (zeroes past the backing
file's end, or without one).

The backing child is what the ``backing`` option says (a node name, inline options,
or null for none), else the file named in the image header, opened read-only with
the format from the header or probed, as QEMU does.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
from typing import Any, ClassVar

from qjobd.block import _host
from qjobd.block.node import (
    PERM_NONE,
    BlockNode,
    BlockStatus,
    ChildOpener,
    CommonOptions,
    Edge,
    HostFill,
    Perm,
)
from qjobd.block.qcow2.image import Qcow2Image
from qjobd.block.qcow2.tables import Kind
from qjobd.errors import QMPError

_log = logging.getLogger(__name__)

#: The prefix QEMU puts on every failure to open an image's backing file.
BACKING_ERROR_PREFIX = "Could not open backing file: "


class Qcow2Node(BlockNode):
    """See the module docstring."""

    format_name = "qcow2"
    early_children: ClassVar[tuple[str, ...]] = ("file",)

    def __init__(self, options: dict[str, Any], common: CommonOptions) -> None:
        super().__init__(options, common)
        self._image: Qcow2Image | None = None

    @property
    def image(self) -> Qcow2Image:
        assert self._image is not None
        return self._image

    @property
    def snapshot_store(self) -> Qcow2Image:
        return self.image

    @property
    def file(self) -> BlockNode:
        return self.child("file")

    # Section: open

    def open(self, open_child: ChildOpener) -> None:
        """qcow2_open, then the backing file (bdrv_open_backing_file)."""
        file = open_child("file")
        self._image = Qcow2Image(file, writable=not self.read_only)
        self._open_backing(open_child)

    def _open_backing(self, open_child: ChildOpener) -> None:
        if "backing" in self.options:
            # What the image names, compared with what was given instead.
            self.auto_backing_file = self.image.header.backing_file or ""
            if self.options["backing"] is not None:
                open_child("backing", self.options["backing"], backing=True)
            return
        self.open_backing(open_child)

    def open_backing(self, open_child: ChildOpener) -> None:
        """bdrv_open_backing_file: the file the header names, read-only, in the
        header's format (probed without one)."""
        path = self.full_backing_filename()
        if path is None:
            return
        ref: dict[str, Any] = {"file": {"driver": "file", "filename": path}}
        backing_format = self.image.header.backing_format
        if backing_format:
            ref = {"driver": backing_format, **ref}
        try:
            backing = open_child("backing", ref, backing=True)
        except QMPError as error:
            raise QMPError(BACKING_ERROR_PREFIX + error.desc, error.error_class) from error
        self.auto_backing_file = backing.filename

    def full_backing_filename(self) -> str | None:
        """bdrv_get_full_backing_filename: relative names are the image's siblings."""
        name = self.image.header.backing_file
        if not name:
            return None
        if name.startswith("/") or _has_protocol(name):
            return name
        directory = self.file.exact_filename()
        if not directory:
            return None
        return posixpath.join(posixpath.dirname(directory), name)

    def _reopen(self, read_only: bool) -> None:
        self.image.set_writable(not read_only)

    def _grow(self, size: int) -> None:
        self.image.grow(size)

    def change_backing_file(self, name: str | None, fmt: str | None) -> None:
        """Name a new backing file in the image (after stream or commit)."""
        self.image.set_backing_file(name, fmt)
        self.auto_backing_file = name or ""

    def child_replaceable(self, name: str) -> bool:
        """The image keeps its file node for all its I/O, so "file" stays put."""
        return name != "file"

    # Section: permissions

    def child_perm(self, edge: Edge, perm: Perm, shared: Perm) -> tuple[Perm, Perm]:
        """bdrv_default_perms: storage rules for "file", copy-on-write for "backing"."""
        if edge.name == "backing":
            nperm = perm & Perm.CONSISTENT_READ
            nshared = (Perm.WRITE | Perm.RESIZE) if shared & Perm.WRITE else PERM_NONE
            nshared |= Perm.CONSISTENT_READ | Perm.WRITE_UNCHANGED
        else:
            nperm, nshared = perm, shared
            if not self.read_only:
                nperm |= Perm.WRITE | Perm.RESIZE
            nperm |= Perm.CONSISTENT_READ
            nshared &= ~(Perm.WRITE | Perm.RESIZE)
        if edge.node.force_share:
            nshared = Perm(0x0F)
        return nperm, nshared

    # Section: I/O

    def _length(self) -> int:
        return self.image.size

    def _do_preadv(self, offset: int, buffer: memoryview) -> None:
        image = self.image
        done = 0
        total = len(buffer)
        while done < total:
            position = offset + done
            run = image.map(position, total - done)
            part = buffer[done:done + run.length]
            if run.kind is Kind.DATA:
                self.file.debug_event("read_aio")
                self.file.readinto(run.host, part)
            elif run.kind is Kind.COMPRESSED:
                within = position & (image.cluster_size - 1)
                cluster = image.read_compressed(run.host)
                part[:] = cluster[within:within + run.length]
            elif run.kind is Kind.UNALLOCATED and self.backing is not None:
                self._read_backing(position, part)
            else:
                part[:] = _host.zero_bytes(run.length)
            done += run.length

    def host_extent(self, offset: int, length: int) -> tuple[int, int, int] | None:
        """A run of data clusters, where the file child is a plain file; where this
        image allocates nothing, the backing node's answer (that is what it shows)."""
        if self.detect_zeroes != "off" or offset >= self.length():
            return None
        run = self.image.map(offset, min(length, self.length() - offset))
        if run.kind is Kind.UNALLOCATED:
            backing = self.backing
            if backing is None or offset >= backing.length():
                return None
            return backing.host_extent(offset, min(run.length, backing.length() - offset))
        if run.kind is not Kind.DATA:
            return None
        passthrough = self.file.passthrough_fd()
        if passthrough is None:
            return None
        fd, shift = passthrough
        return fd, run.host + shift, run.length

    def write_direct(self, offset: int, length: int, fill: HostFill, *,
                     known_nonzero: bool = False) -> bool:
        """Data straight into the image file, where the file child is a plain file:
        :meth:`Qcow2Image.write_direct` places it (new clusters get their L2 entries
        once the data is in them)."""
        if self.detect_zeroes != "off" and not known_nonzero:
            return False
        file = self.file
        passthrough = file.passthrough_fd()
        if passthrough is None:
            return False
        self._check_write(offset, length)
        if not length:
            return True
        self._check_inside(offset, length)
        fd, shift = passthrough
        fill.check(fd)  # before clusters are allocated for nothing

        def put(guest: int, host: int, count: int) -> None:
            try:
                fill(fd, host + shift, guest, count)
            finally:
                file.mark_written(host, count)

        self._bump_gen()
        try:
            self.image.write_direct(offset, length, put, self._read_below)
        finally:
            self._record_write(offset, length)
        return True

    def _read_backing(self, offset: int, buffer: memoryview) -> None:
        backing = self.backing
        assert backing is not None
        inside = max(0, min(len(buffer), backing.length() - offset))
        if inside:
            backing.readinto(offset, buffer[:inside])
        if inside < len(buffer):
            buffer[inside:] = _host.zero_bytes(len(buffer) - inside)

    def _read_below(self, offset: int, buffer: memoryview) -> None:
        """What this image shows where it allocates nothing (for copy-on-write)."""
        if self.backing is not None:
            self._read_backing(offset, buffer)
        else:
            buffer[:] = _host.zero_bytes(len(buffer))

    def _check_inside(self, offset: int, length: int) -> None:
        """An image does not grow by writing past its end (QEMU answers EIO)."""
        if offset + length > self.image.size:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        self._check_inside(offset, len(data))
        self.file.debug_event("write_aio")
        self.image.write(offset, data, self._read_below)

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        self._check_inside(offset, length)
        self.image.write_zeroes(offset, length, may_unmap, self.names_backing,
                                self._read_below)

    @property
    def names_backing(self) -> bool:
        """Whether unallocated clusters may read from a backing file, now or later.

        An image opened without the backing file its header names (a mirror's
        target until the job completes) still gets zero clusters where zeroes are
        written: leaving them unallocated would show the backing file's data once
        it is attached.
        """
        return self.backing is not None or bool(self.image.header.backing_file)

    def zeroes_with_unmap(self) -> bool:
        """Version 3 images have zero clusters (qcow2's supported_zero_flags)."""
        return self.image.header.version >= 3

    def _do_flush(self) -> None:
        self.image.write_back()

    def _do_block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        run = self.image.map(offset, length)
        if run.kind in (Kind.DATA, Kind.COMPRESSED):
            return BlockStatus.DATA, run.length
        if run.kind is Kind.UNALLOCATED and self.backing is not None:
            backing = self.backing
            if offset >= backing.length():
                return BlockStatus.ZERO, run.length
            return backing.block_status(offset, run.length)
        return BlockStatus.ZERO, run.length

    def allocated_here(self, offset: int, length: int) -> tuple[bool, int]:
        """Whether this image (not its backing chain) says what the range holds.

        What ``sync: top`` copies and what commit and stream move: data, compressed
        and zero clusters are this image's, unallocated ones belong to the backing.
        """
        run = self.image.map(offset, min(length, max(1, self.length() - offset)))
        return run.kind is not Kind.UNALLOCATED, run.length

    # Section: query

    def _get_info(self) -> tuple[int, bool] | None:
        header = self.image.header
        return header.cluster_size, header.dirty

    def _allocated_size(self) -> int | None:
        """bdrv_sum_allocated_file_size: data and metadata children, not backing."""
        return self.file._allocated_size()

    def image_info(self) -> dict[str, Any]:
        info = super().image_info()
        header = self.image.header
        if header.backing_file:
            info["backing-filename"] = header.backing_file
            full = self.full_backing_filename()
            if full is not None:
                info["full-backing-filename"] = full
            if header.backing_format:
                info["backing-filename-format"] = header.backing_format
        if self.image.snapshots:
            info["snapshots"] = [s.info() for s in self.image.snapshots]
        info["format-specific"] = {"type": "qcow2", "data": self._specific_info()}
        return info

    def _specific_info(self) -> dict[str, Any]:
        header = self.image.header
        if header.version == 2:
            # compression-type is not optional in the schema, so QEMU shows zlib.
            return {"compat": "0.10", "refcount-bits": header.refcount_bits,
                    "compression-type": "zlib"}
        return {
            "compat": "1.1",
            "compression-type": "zstd" if header.compression_type else "zlib",
            "lazy-refcounts": header.lazy_refcounts,
            "refcount-bits": header.refcount_bits,
            "corrupt": header.corrupt,
            "extended-l2": header.extended_l2,
        }

    def _close(self) -> None:
        """Write back what is still in memory; the file child is still open."""
        image, self._image = self._image, None
        if image is not None and image.writable:
            try:
                image.write_back()
                self.file.flush()
            except OSError as error:
                _log.error("qcow2 node %r: writing back its tables at close failed: %s",
                           self.node_name, error)


def _has_protocol(name: str) -> bool:
    """path_has_protocol: "proto:" before any slash."""
    colon = name.find(":")
    slash = name.find("/")
    return colon > 0 and (slash < 0 or colon < slash)


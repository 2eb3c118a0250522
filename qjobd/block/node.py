"""The node interface every driver implements, and the pieces of QEMU's graph model.

A ``BlockNode`` is one BlockDriverState: it has a driver (``format_name`` in QEMU's
words), a node name, children reached through named edges and parents holding edges to
it.  Its I/O methods are blocking and are called from worker threads, possibly several
at once on the same node, so drivers keep no per-request state on the node and use
positional reads/writes on raw fds only.

The public I/O entry points live here (``pread``, ``pwrite``, ``write_zeroes``,
``block_status``, ``flush``) and do the checks every driver shares, then call the
driver hooks (``_do_*``).  That mirrors QEMU's split between block/io.c and the
drivers, which is also where blkdebug's events are raised.
"""

from __future__ import annotations

import enum
import errno
import os
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Final, Protocol

import attrs

from qjobd import qjson
from qjobd.block import _host
from qjobd.block.dirty import DirtyBitmap
from qjobd.errors import QMPError
from qjobd.qdict import iteration_order

SECTOR_SIZE: Final = 512


class Perm(enum.IntFlag):
    """QEMU's BLK_PERM_* bits (7.2: GRAPH_MOD is gone, ALL is 0x0f)."""

    CONSISTENT_READ = 0x01
    WRITE = 0x02
    WRITE_UNCHANGED = 0x04
    RESIZE = 0x08


PERM_NONE: Final = Perm(0)
PERM_ALL: Final = Perm(0x0F)
_PERM_NAMES: Final = (
    (Perm.CONSISTENT_READ, "consistent read"),
    (Perm.WRITE, "write"),
    (Perm.WRITE_UNCHANGED, "write unchanged"),
    (Perm.RESIZE, "resize"),
)


def perm_names(perm: Perm) -> str:
    """Permission bits spelled as QEMU's error messages spell them."""
    return ", ".join(name for bit, name in _PERM_NAMES if perm & bit)


class BlockStatus(enum.Enum):
    """What ``block_status`` found at an offset.

    DATA: must be read and copied.  ZERO: reads as zeroes (a hole, an unallocated
    extent or a zero-reading driver), so a copy can punch or skip it.
    """

    DATA = "data"
    ZERO = "zero"


class EdgeKind(enum.Enum):
    """Who holds an edge; it decides root-ness and blockdev-del's wording.

    NODE: a parent node (``node '#block123'``); JOB: a block job's extra node
    reference (``backup job 'j1'``); BACKEND: a BlockBackend (exports, job BBs).
    """

    NODE = "node"
    JOB = "job"
    BACKEND = "backend"


@attrs.define(eq=False)
class Edge:
    """One parent's use of a node: QEMU's BdrvChild.

    ``perm`` is what the parent needs, ``shared`` what it lets other parents do; the
    graph keeps both consistent across all parents of ``node``.
    """

    node: BlockNode
    name: str
    kind: EdgeKind
    parent_desc: str
    perm: Perm = PERM_NONE
    shared: Perm = PERM_ALL
    parent: BlockNode | None = None
    #: For a node parent: None = pass the parent's cumulative perms through (filters and
    #: raw), else a fixed (perm, shared) pair the parent always needs on this child.
    fixed: tuple[Perm, Perm] | None = None


@attrs.define
class CommonOptions:
    """The BlockdevOptions base members after QEMU's inheritance rules."""

    read_only: bool = False
    auto_read_only: bool = False
    force_share: bool = False
    cache_direct: bool = False
    cache_no_flush: bool = False
    discard_unmap: bool = False
    detect_zeroes: str = "off"


class ChildOpener(Protocol):
    """How a driver's ``open`` gets its children from the graph.

    ``opener(key)`` opens (or looks up) the BlockdevRef in ``options[key]``;
    ``opener(key, ref)`` opens ``ref`` instead (a backing file named by the image).
    Either way the result is attached as the child named ``key``.  With
    ``backing=True`` the child gets QEMU's backing defaults (read-only unless its
    options say otherwise) and the graph refuses loops and absurd depths.
    """

    def __call__(self, key: str, ref: Any = None, /, *, backing: bool = False) -> BlockNode:
        ...


class SnapshotEntry(Protocol):
    """One internal snapshot of an image (qjobd.block.qcow2.snapshots.Snapshot)."""

    id: str
    name: str

    def info(self) -> dict[str, Any]: ...


class SnapshotStore(Protocol):
    """What a format keeping internal snapshots offers (the qcow2 image); the rules
    around it are in qjobd.block.internal_snapshots."""

    @property
    def snapshots(self) -> Sequence[SnapshotEntry]: ...

    def create_snapshot(self, name: str, /) -> SnapshotEntry: ...

    def load_snapshot(self, snapshot: Any, /) -> None: ...

    def delete_snapshot(self, snapshot: Any, /) -> None: ...


class HostFill(Protocol):
    """Writes the bytes of a range straight into an OS file (see
    :meth:`BlockNode.write_direct`); raises OSError when it cannot."""

    def check(self, fd: int, /) -> None:
        """Raise OSError if the bytes cannot go into ``fd`` this way at all
        (copy_file_range across filesystems): asked before anything is allocated."""

    def __call__(self, fd: int, position: int, guest: int, count: int, /) -> None:
        """Write the bytes meant for node offset ``guest`` (``count`` of them) into
        ``fd`` at byte ``position``."""


class BlockNode:
    """One node of the block graph; subclasses are the drivers.

    Class attributes describe the driver the way QEMU's BlockDriver does, because the
    query output and the filename rules depend on them.
    """

    #: QEMU's format_name; shown as "drv" and "format" (instances of job filters
    #: set their own, e.g. "copy-before-write").
    format_name: str = ""
    #: Protocol drivers (bdrv_file_open) own their data; others sit on children.
    is_protocol: ClassVar[bool] = False
    #: Filters show their child as backing-image in non-flat queries.
    is_filter: ClassVar[bool] = False
    #: Options that make a JSON filename necessary (strong_runtime_opts); a trailing
    #: dot means "every flattened key with this prefix".
    strong_options: ClassVar[tuple[str, ...]] = ()
    #: Whether bdrv_get_info succeeds (gives "dirty-flag": false).
    has_get_info: ClassVar[bool] = False
    #: QEMU's bdrv_needs_filename: an empty "filename" is refused before opening.
    needs_filename: ClassVar[bool] = False
    #: Option keys holding BlockdevRefs that are opened before this node is named
    #: (format drivers probe their "file" first in bdrv_open_inherit).
    early_children: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: dict[str, Any], common: CommonOptions) -> None:
        self.options = options
        self.node_name = ""
        self.generated_name = False
        self.read_only = common.read_only
        self.auto_read_only = common.auto_read_only
        self.force_share = common.force_share
        self.cache_direct = common.cache_direct
        self.cache_no_flush = common.cache_no_flush
        self.discard_unmap = common.discard_unmap
        self.detect_zeroes = common.detect_zeroes
        #: Child edges in QEMU's child order (the order they were attached).
        self.child_edges: list[Edge] = []
        #: Parent edges, newest first (QLIST_INSERT_HEAD), the order QEMU checks.
        self.parents: list[Edge] = []
        self.monitor_owned = False
        self.closed = False
        #: QEMU's auto_backing_file: the backing file this node names when nothing
        #: overrides it (the header's name, or the implicitly opened node's
        #: filename); "" when it names none.
        self.auto_backing_file = ""
        #: Bitmaps marked by every write to this node, newest first (a tuple, so
        #: writer threads iterate a snapshot while the event loop adds or removes).
        self.dirty_bitmaps: tuple[DirtyBitmap, ...] = ()
        self._write_gen = 0
        self._flushed_gen = 0
        self._gen_lock = threading.Lock()

    # Section: identity

    @property
    def driver(self) -> str:
        """The driver name (QEMU's format_name)."""
        return self.format_name

    @property
    def children(self) -> dict[str, BlockNode]:
        """Children by edge name ("file", "image", ...)."""
        return {edge.name: edge.node for edge in self.child_edges}

    def child(self, name: str) -> BlockNode:
        for edge in self.child_edges:
            if edge.name == name:
                return edge.node
        raise KeyError(name)

    @property
    def primary(self) -> BlockNode | None:
        """The child that holds this node's data (bdrv_primary_bs), if any."""
        return self.child_edges[0].node if self.child_edges else None

    @property
    def snapshot_store(self) -> SnapshotStore | None:
        """Where this node's own internal snapshots live; None for formats without."""
        return None

    @property
    def filtered(self) -> BlockNode | None:
        """The filtered child when this node is a filter (bdrv_filter_bs)."""
        return self.primary if self.is_filter else None

    @property
    def backing(self) -> BlockNode | None:
        """The backing (copy-on-write) child, for formats that have one."""
        for edge in self.child_edges:
            if edge.name == "backing":
                return edge.node
        return None

    @property
    def filtered_or_backing(self) -> BlockNode | None:
        """bdrv_filter_or_cow_bs: the next node down a backing chain."""
        return self.filtered if self.is_filter else self.backing

    def file_identity(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the host file holding this node's data, if any.

        The graph compares them to refuse backing chains that loop.
        """
        primary = self.primary
        return primary.file_identity() if primary is not None else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node_name!r} drv={self.format_name}>"

    # Section: driver hooks

    def open(self, open_child: ChildOpener) -> None:
        """Driver open, run after the node got its name; raise QMPError with QEMU's
        text.  See :class:`ChildOpener` for ``open_child``."""

    def _length(self) -> int:
        raise NotImplementedError

    def _do_preadv(self, offset: int, buffer: memoryview) -> None:
        raise NotImplementedError

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        raise NotImplementedError

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        self._do_pwrite(offset, memoryview(_host.zero_bytes(length)))

    def _do_discard(self, offset: int, length: int) -> None:
        """Default: discard is advisory, so doing nothing is correct."""

    def _do_block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        return BlockStatus.DATA, length

    def _do_flush(self) -> None:
        """Flush this node's own data (children are flushed by ``flush``)."""

    def _close(self) -> None:
        """Release the driver's resources (fds)."""

    def passthrough_fd(self) -> tuple[int, int] | None:
        """(fd, shift) when node offset X is byte X+shift of an OS file, else None.

        Lets the copy engine use copy_file_range and SEEK_DATA directly.  Only drivers
        whose I/O is exactly the file's (file, raw over file) return one; anything
        that injects errors or emits events (blkdebug) must not.
        """
        return None

    def host_extent(self, offset: int, length: int) -> tuple[int, int, int] | None:
        """(fd, file offset, byte count) when the data at ``offset`` lies as it is
        in an OS file for ``count`` (<= ``length``) bytes, else None.

        The copy engine then moves it with copy_file_range.  The default follows
        :meth:`passthrough_fd`; formats that map ranges (qcow2) answer per run.
        """
        passthrough = self.passthrough_fd()
        if passthrough is None:
            return None
        fd, shift = passthrough
        return fd, offset + shift, length

    def write_direct(self, offset: int, length: int, fill: HostFill, *,
                     known_nonzero: bool = False) -> bool:
        """Write ``[offset, offset + length)`` by having ``fill`` put the bytes
        straight into the OS file under this node; False (nothing done) when this
        node's data does not lie in a plain file, and the caller writes with
        :meth:`pwrite` instead.

        The copy engine's way of writing without Python buffers: ``fill`` copies
        with copy_file_range.  The default serves nodes with a :meth:`passthrough_fd`;
        formats that map ranges (qcow2) place the data themselves.  The range
        counts as written (flush, dirty bitmaps) even when ``fill`` fails half way,
        as a failed :meth:`pwrite` does.  A node with detect-zeroes, which would
        turn all-zero data into a zero write, takes the data only when the caller
        has seen a nonzero byte in it (``known_nonzero``), if at all.
        """
        passthrough = self.passthrough_fd()
        if passthrough is None:
            return False
        self._check_write(offset, length)
        if not length:
            return True
        fd, shift = passthrough
        fill.check(fd)
        try:
            fill(fd, offset + shift, offset, length)
        finally:
            self.mark_written(offset, length)
        return True

    def debug_event(self, event: str) -> None:
        """A blkdebug event raised on this node by a parent; no-op except in blkdebug."""

    def _allocated_size(self) -> int | None:
        """Host bytes used (actual-size); None when unknown (QEMU's -ENOTSUP)."""
        if self.is_protocol:
            return None
        if self.is_filter:
            filtered = self.filtered
            return filtered._allocated_size() if filtered else None
        total = 0
        for edge in self.child_edges:
            size = edge.node._allocated_size()
            if size is None:
                return None
            total += size
        return total

    def grow(self, size: int) -> None:
        """bdrv_truncate to a larger size, new space reading as zeroes (commit grows
        a smaller base so).  Raises OSError; QMPError with QEMU's text for refusals."""
        if size <= self.length():
            return
        if self.read_only:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        self._grow(size)

    def _grow(self, size: int) -> None:
        filtered = self.filtered
        if filtered is None:
            raise QMPError("Image format driver does not support resize")
        filtered.grow(size)

    def get_info(self) -> tuple[int, bool] | None:
        """bdrv_get_info: (cluster size, 0 for none; dirty flag), or None when it
        fails (what mirror's default granularity and query output rest on)."""
        return self._get_info()

    def _get_info(self) -> tuple[int, bool] | None:
        """The driver's bdrv_get_info; filters answer for their child, as QEMU's do."""
        if self.has_get_info:
            return 0, False
        filtered = self.filtered
        return filtered._get_info() if filtered else None

    # Section: public I/O

    def length(self) -> int:
        """Virtual size in bytes, rounded up to 512 like bdrv_getlength."""
        raw = self._length()
        return (raw + SECTOR_SIZE - 1) // SECTOR_SIZE * SECTOR_SIZE

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > (1 << 63) - 1:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    def pread(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes; the range past the end of a file reads as zeroes."""
        buffer = bytearray(length)
        self.readinto(offset, memoryview(buffer))
        return bytes(buffer)

    def readinto(self, offset: int, buffer: memoryview) -> None:
        """Read ``len(buffer)`` bytes into ``buffer`` (the allocation-free variant)."""
        self._check(offset, len(buffer))
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if len(buffer):
            self._do_preadv(offset, buffer)

    def _check_write(self, offset: int, length: int) -> None:
        self._check(offset, length)
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if self.read_only:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    def _bump_gen(self) -> None:
        with self._gen_lock:
            self._write_gen += 1

    def mark_written(self, offset: int = 0, length: int | None = None) -> None:
        """Note a write that bypassed ``pwrite`` (copy_file_range into our fd).

        Flush skips nodes with nothing written since the last flush, and dirty
        bitmaps must see every write, so whoever writes behind the node's back must
        say so; it is passed down the primary chain.  Without a length the whole
        node counts as written.
        """
        self._bump_gen()
        if self.dirty_bitmaps:
            self._record_write(offset, self.length() - offset if length is None else length)
        primary = self.primary
        if primary is not None:
            primary.mark_written(self._primary_offset(offset), length)

    def _primary_offset(self, offset: int) -> int:
        """Where byte ``offset`` of this node lives in its primary child."""
        return offset

    # Section: dirty bitmaps

    def add_dirty_bitmap(self, bitmap: DirtyBitmap) -> None:
        """Have every later write to this node mark ``bitmap`` (see block/dirty.py)."""
        self.dirty_bitmaps = (bitmap, *self.dirty_bitmaps)

    def remove_dirty_bitmap(self, bitmap: DirtyBitmap) -> None:
        self.dirty_bitmaps = tuple(b for b in self.dirty_bitmaps if b is not bitmap)

    def _record_write(self, offset: int, length: int) -> None:
        for bitmap in self.dirty_bitmaps:
            bitmap.record_write(offset, length)

    def needs_flush(self) -> bool:
        """Whether this node or a child was written since its last flush."""
        with self._gen_lock:
            if self._write_gen != self._flushed_gen:
                return True
        return any(edge.node.needs_flush() for edge in self.child_edges)

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset``; all-zero data may become a zero write.

        The zero conversion follows the node's detect-zeroes option exactly as QEMU's
        bdrv_aligned_pwritev does, which is also where the pwritev events come from.
        """
        view = memoryview(data).cast("B")
        self._check_write(offset, len(view))
        if not len(view):
            return
        self._bump_gen()
        try:
            if self.detect_zeroes != "off" and _host.is_zero(view):
                self.debug_event("pwritev_zero")
                self._do_write_zeroes(offset, len(view), self.detect_zeroes == "unmap")
            else:
                self.debug_event("pwritev")
                self._do_pwrite(offset, view)
        finally:
            # Even a failed write may have changed part of the range.
            self._record_write(offset, len(view))
        self.debug_event("pwritev_done")

    def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = True) -> None:
        """Make the range read as zeroes; with ``may_unmap`` prefer deallocating it."""
        self._check_write(offset, length)
        if not length:
            return
        self._bump_gen()
        self.debug_event("pwritev_zero")
        try:
            self._do_write_zeroes(offset, length, may_unmap)
        finally:
            self._record_write(offset, length)
        self.debug_event("pwritev_done")

    def discard(self, offset: int, length: int) -> None:
        """Hint that the range is unused; honoured only with discard=unmap."""
        self._check_write(offset, length)
        if length and self.discard_unmap:
            self._bump_gen()
            try:
                self._do_discard(offset, length)
            finally:
                self._record_write(offset, length)

    def block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        """Kind of the extent starting at ``offset`` and its length (<= ``length``).

        The count is never 0 for a non-empty request, so callers always progress.
        """
        self._check(offset, length)
        if length == 0:
            return BlockStatus.DATA, 0
        end = self.length()
        if offset >= end:
            return BlockStatus.ZERO, length
        kind, count = self._do_block_status(offset, min(length, end - offset))
        return kind, max(1, min(count, length))

    def change_backing_file(self, name: str | None, fmt: str | None) -> None:
        """Store a new backing file name in the image (formats with backing files)."""
        raise QMPError(f"Driver '{self.format_name}' of node '{self.node_name}' does not "
                       "support backing files")

    def allocated_here(self, offset: int, length: int) -> tuple[bool, int]:
        """Whether this node itself (not a backing file) says what the range holds,
        and for how many bytes that answer holds (bdrv_is_allocated).

        Nodes without a backing file own all their data; filters answer for their
        child; formats with backing files override this.
        """
        filtered = self.filtered
        if filtered is not None:
            return filtered.allocated_here(offset, length)
        return True, length

    def zeroes_with_unmap(self) -> bool:
        """Whether the driver can make zeroes by deallocating (QEMU's
        BDRV_REQ_MAY_UNMAP in supported_zero_flags); filters ask their child."""
        filtered = self.filtered
        return filtered.zeroes_with_unmap() if filtered is not None else False

    def can_write_zeroes_with_unmap(self) -> bool:
        """bdrv_can_write_zeroes_with_unmap: opened with discard=unmap, and the
        driver deallocates for zeroes.  A mirror that must zero its target first
        does so only then, and otherwise copies everything."""
        return self.discard_unmap and self.zeroes_with_unmap()

    @property
    def names_backing(self) -> bool:
        """Whether the image has a backing file, open or only named in its header
        (formats with headers override this)."""
        return self.backing is not None

    def open_backing(self, open_child: ChildOpener) -> None:
        """Open the backing file the image itself names, if any (formats without
        backing files name none).  See :meth:`BlockGraph.open_backing_file`."""

    def flush(self) -> None:
        """Write back this node and its children, skipping clean nodes like QEMU.

        Events and the per-node "nothing written since last flush" shortcut follow
        bdrv_co_flush, because blkdebug's flush rules depend on them.
        """
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if self.read_only:
            return
        primary = self.primary
        with self._gen_lock:
            current = self._write_gen
        if primary is not None:
            primary.debug_event("flush_to_os")
        if not self.cache_no_flush and self._flushed_gen != current:
            if primary is not None:
                primary.debug_event("flush_to_disk")
            self._do_flush()
            with self._gen_lock:
                self._flushed_gen = max(self._flushed_gen, current)
        for edge in self.child_edges:
            edge.node.flush()

    def close(self) -> None:
        """Release resources; children are closed by the graph, not here."""
        if not self.closed:
            self.closed = True
            self._close()

    # Section: filenames

    def _strong_runtime_options(self) -> tuple[dict[str, Any], bool]:
        """QEMU's append_strong_runtime_options: (options dict, any besides driver/filename)."""
        found: dict[str, Any] = {}
        strong_found = False
        flat = _flatten(self.options)
        for name in ("driver", "filename", *self.strong_options):
            given = False
            if name.endswith("."):
                # Walk bs->options in its own QDict order: two keys sharing a hash
                # bucket come out in the order a client then sees.
                for key in iteration_order(list(flat)):
                    if key.startswith(name):
                        found[key] = flat[key]
                        given = True
            elif name in flat:
                found[name] = flat[name]
                given = True
            if given and name not in ("driver", "filename"):
                strong_found = True
        found.setdefault("driver", self.format_name)
        return found, strong_found

    def backing_overridden(self) -> bool:
        """bdrv_backing_overridden: the backing child is not the one the image names.

        Then the node's filename must spell out its backing (or ``"backing": null``),
        because opening the plain file name would give a different chain.
        """
        backing = self.backing
        if backing is not None:
            return self.auto_backing_file != backing.filename
        return self.auto_backing_file != ""

    def full_open_options(self) -> dict[str, Any]:
        """The options that would reopen this subtree (bs->full_open_options).

        A backing child the image names anyway is left out, as QEMU leaves it.
        """
        opts, _ = self._strong_runtime_options()
        overridden = self.backing_overridden()
        for edge in self.child_edges:
            if edge.name == "backing" and not overridden:
                continue
            opts[edge.name] = edge.node.full_open_options()
        if overridden and self.backing is None:
            opts["backing"] = None
        return opts

    def exact_filename(self) -> str:
        """A plain filename that reopens this node with no options, or "".

        The default is QEMU's rule for format nodes: borrow the primary child's name
        when that child is a protocol node and nothing strong was set here.
        """
        primary = self.primary
        if primary is None or self.is_filter or self.backing_overridden():
            return ""
        _, strong = self._strong_runtime_options()
        if strong or not primary.is_protocol:
            return ""
        return primary.exact_filename()

    @property
    def filename(self) -> str:
        """What query-named-block-nodes shows as "file": exact name or json:{...}."""
        exact = self.exact_filename()
        if exact:
            return exact
        return "json:" + qjson.encode(self.full_open_options())

    # Section: query

    def image_info(self) -> dict[str, Any]:
        """ImageInfo in schema member order (the encoder reorders keys itself)."""
        info: dict[str, Any] = {"filename": self.filename, "format": self.format_name}
        got = self._get_info()
        if got is not None:
            cluster_size, dirty = got
            if cluster_size:
                info["cluster-size"] = cluster_size
            info["dirty-flag"] = dirty
        allocated = self._allocated_size()
        if allocated is not None:
            info["actual-size"] = allocated
        info["virtual-size"] = self.length()
        return info

    def info(self, flat: bool = True) -> dict[str, Any]:
        """BlockDeviceInfo for query-named-block-nodes, in schema member order.

        Non-flat output nests each filter's child and each backing file as
        "backing-image" and counts the depth, as bdrv_block_device_info does
        (blkdebug, job filters and backing chains: raw is not a filter in QEMU's
        sense).
        """
        image = self.image_info()
        depth = 0
        if not flat:
            current: BlockNode = self
            slot = image
            while (nxt := current.filtered_or_backing) is not None:
                depth += 1
                nested = nxt.image_info()
                slot["backing-image"] = nested
                slot = nested
                current = nxt
        info: dict[str, Any] = {"file": self.filename}
        if self.node_name:
            info["node-name"] = self.node_name
        info.update({
            "ro": self.read_only,
            "drv": self.format_name,
            "backing_file_depth": depth,
            "encrypted": False,
            "detect_zeroes": self.detect_zeroes,
            "bps": 0, "bps_rd": 0, "bps_wr": 0,
            "iops": 0, "iops_rd": 0, "iops_wr": 0,
            "image": image,
            "cache": {"writeback": True, "direct": self.cache_direct,
                      "no-flush": self.cache_no_flush},
            "write_threshold": 0,
        })
        backing = self.backing
        if backing is not None:
            info["backing_file"] = backing.filename
        bitmaps = [bitmap.info() for bitmap in self.dirty_bitmaps]
        if bitmaps:
            info["dirty-bitmaps"] = bitmaps
        return info

    # Section: perms

    def cumulative_perms(self) -> tuple[Perm, Perm]:
        """(union of what parents need, intersection of what they share)."""
        perm = PERM_NONE
        shared = PERM_ALL
        for edge in self.parents:
            perm |= edge.perm
            shared &= edge.shared
        return perm, shared

    def child_perm(self, edge: Edge, perm: Perm, shared: Perm) -> tuple[Perm, Perm]:
        """What this node needs on a child edge, given its parents' cumulative perms.

        Default: bdrv_filter_default_perms (pass everything through), which is what
        raw, blkdebug and the job filters use; a fixed pair on the edge wins, and a
        force-share child is shared with everyone.
        """
        if edge.fixed is not None:
            nperm, nshared = edge.fixed
        else:
            nperm, nshared = perm, shared
        if edge.node.force_share:
            nshared = PERM_ALL
        return nperm, nshared

    def child_replaceable(self, name: str) -> bool:
        """Whether the child edge ``name`` may be pointed at another node while open.

        Drivers that look their children up for every request follow such a move
        (bdrv_replace_node); one that keeps a child's node for itself says no, and
        the graph then refuses to put an overlay there.
        """
        return True

    def reopen(self, read_only: bool) -> None:
        """bdrv_reopen_set_read_only for this node and the children that inherit
        its options (not monitor-owned ones); raises QMPError and changes nothing
        when the node cannot be made writable.

        Drivers with state that depends on it (file descriptors, qcow2's
        refcounts) override :meth:`_reopen`.
        """
        if read_only == self.read_only:
            return
        children = [edge.node for edge in self.child_edges
                    if edge.name != "backing" and not edge.node.monitor_owned]
        if read_only:
            self._reopen(True)
            self.read_only = True
            for child in children:
                child.reopen(True)
            return
        done: list[BlockNode] = []
        try:
            for child in children:
                child.reopen(False)
                done.append(child)
            self._reopen(False)
        except BaseException:
            for child in done:
                child.reopen(True)
            raise
        self.read_only = False

    def _reopen(self, read_only: bool) -> None:
        """The driver's part of :meth:`reopen` (flags only, by default)."""

    def ensure_writable(self) -> None:
        """Called when a parent takes write permission; may reopen read-write.

        Raises QMPError when that is impossible (file nodes with auto-read-only).
        """


def _flatten(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """qdict_flatten: nested dicts and lists become dotted keys (children excluded
    by callers, since child options live in the child's own full_open_options)."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            if prefix == "" and key in ("file", "image"):
                continue
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    flat.update(_flatten(item, f"{prefix}{key}.{index}."))
                else:
                    flat[f"{prefix}{key}.{index}"] = item
        elif prefix == "" and key in ("file", "image"):
            continue
        else:
            flat[f"{prefix}{key}"] = value
    return flat

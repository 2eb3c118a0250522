"""The ``file`` protocol driver: a node backed by a regular file on the host.

Semantics follow QEMU 7.2's file-posix with aio=threads: every request is one
positional syscall on the node's fd (pread/pwrite never touch a shared file
position, so worker threads can run requests in parallel), reads past the end of the
file return zeroes, writes past it extend the file, zero writes punch holes so copy
targets stay sparse, and extents come from SEEK_DATA/SEEK_HOLE.

With cache.direct=on the fd has O_DIRECT; requests are then bounced through
page-aligned buffers and widened to 4 KiB, which satisfies any alignment the kernel
asks for on 512-byte and 4 KiB sector devices.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
from typing import Any, ClassVar, Final

from qjobd.block import _host
from qjobd.block.node import BlockNode, BlockStatus, ChildOpener, CommonOptions
from qjobd.errors import QMPError

DIRECT_ALIGN: Final = 4096


def open_error(filename: str, exc: OSError, action: str = "open") -> QMPError:
    """QEMU's qemu_open/qemu_create failure text."""
    return QMPError(f"Could not {action} '{filename}': {os.strerror(exc.errno or errno.EIO)}")


class FileNode(BlockNode):
    """A regular file; see the module docstring."""

    format_name = "file"
    is_protocol: ClassVar[bool] = True
    has_get_info: ClassVar[bool] = True
    needs_filename: ClassVar[bool] = True

    def __init__(self, options: dict[str, Any], common: CommonOptions) -> None:
        super().__init__(options, common)
        self.path: str = options["filename"]
        self.fd = -1
        #: True while an auto-read-only node runs on a read-only fd.
        self._fd_read_only = False

    # Section: open

    def _open_flags(self, writable: bool) -> int:
        flags = os.O_CLOEXEC | (os.O_RDWR if writable else os.O_RDONLY)
        if self.cache_direct:
            flags |= os.O_DIRECT
        return flags

    def _os_open(self, writable: bool) -> int:
        try:
            return os.open(self.path, self._open_flags(writable))
        except OSError as exc:
            if exc.errno == errno.EINVAL and self.cache_direct:
                # Tell "no O_DIRECT on this filesystem" apart from other EINVALs.
                try:
                    os.close(os.open(self.path, self._open_flags(writable) & ~os.O_DIRECT))
                except OSError:
                    raise open_error(self.path, exc) from exc
                raise QMPError(f"Could not open '{self.path}': filesystem does not support "
                               "O_DIRECT") from exc
            raise open_error(self.path, exc) from exc

    def open(self, open_child: ChildOpener) -> None:
        """Open the fd, then validate like raw_open_common (its order of errors)."""
        pr_manager = self.options.get("pr-manager")
        if pr_manager is not None:
            raise QMPError(f"No persistent reservation manager with id '{pr_manager}'")
        writable = not self.read_only
        try:
            self.fd = self._os_open(writable)
        except QMPError:
            if not (writable and self.auto_read_only):
                raise
            # auto-read-only: QEMU keeps the node read-write on paper and runs on a
            # read-only fd until someone needs write permission.
            self.fd = self._os_open(False)
            self._fd_read_only = True
        try:
            if self.options.get("aio") == "native" and not self.cache_direct:
                raise QMPError("aio=native was specified, but it requires cache.direct=on, "
                               "which was not specified.")
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                raise QMPError(f"'file' driver requires '{self.path}' to be a regular file")
        except BaseException:
            self._close()
            raise

    def _reopen(self, read_only: bool) -> None:
        """A new fd in the old one's place (dup2), so threads keep their number."""
        if read_only:
            self.flush()
        new_fd = self._os_open(not read_only)
        try:
            os.dup2(new_fd, self.fd, inheritable=False)
        finally:
            os.close(new_fd)
        self._fd_read_only = False

    def ensure_writable(self) -> None:
        """Reopen read-write in place (dup2 keeps the fd number other threads use)."""
        if not self._fd_read_only:
            return
        new_fd = self._os_open(True)
        try:
            os.dup2(new_fd, self.fd, inheritable=False)
        finally:
            os.close(new_fd)
        self._fd_read_only = False

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # Section: I/O

    def _length(self) -> int:
        return os.fstat(self.fd).st_size

    def _grow(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def _do_preadv(self, offset: int, buffer: memoryview) -> None:
        if self.cache_direct:
            self._direct_read(offset, buffer)
            return
        got = _host.pread_full(self.fd, buffer, offset)
        if got < len(buffer):
            buffer[got:] = _host.zero_bytes(len(buffer) - got)

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        if self.cache_direct:
            self._direct_write(offset, data)
            return
        _host.pwrite_full(self.fd, data, offset)

    def _aligned(self, offset: int, length: int) -> tuple[int, int]:
        start = offset - offset % DIRECT_ALIGN
        end = -(-(offset + length) // DIRECT_ALIGN) * DIRECT_ALIGN
        return start, end

    def _direct_read(self, offset: int, buffer: memoryview) -> None:
        start, end = self._aligned(offset, len(buffer))
        with mmap.mmap(-1, end - start) as bounce:
            view = memoryview(bounce)
            try:
                got = _host.pread_full(self.fd, view, start)
                if got < end - start:
                    view[got:] = _host.zero_bytes(end - start - got)
                buffer[:] = view[offset - start:offset - start + len(buffer)]
            finally:
                view.release()

    def _direct_write(self, offset: int, data: memoryview) -> None:
        start, end = self._aligned(offset, len(data))
        size = self._length()
        with mmap.mmap(-1, end - start) as bounce:
            view = memoryview(bounce)
            try:
                if (start, end) != (offset, offset + len(data)):
                    # Read-modify-write of the partial head/tail blocks.
                    got = _host.pread_full(self.fd, view, start)
                    if got < end - start:
                        view[got:] = _host.zero_bytes(end - start - got)
                view[offset - start:offset - start + len(data)] = data
                _host.pwrite_full(self.fd, view, start)
            finally:
                view.release()
        if offset + len(data) > size and end > offset + len(data):
            # The widened write must not grow the file past what was asked.
            os.ftruncate(self.fd, max(size, offset + len(data)))

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        size = self._length()
        end = offset + length
        if end > size:
            # Growing with ftruncate yields zeroes without allocating anything.
            os.ftruncate(self.fd, end)
            if offset >= size:
                return
            end = size
        modes = []
        if may_unmap:
            modes.append(_host.FALLOC_FL_PUNCH_HOLE | _host.FALLOC_FL_KEEP_SIZE)
        modes.append(_host.FALLOC_FL_ZERO_RANGE)
        for mode in modes:
            try:
                _host.fallocate(self.fd, mode, offset, end - offset)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        step = 1 << 20
        for pos in range(offset, end, step):
            self._do_pwrite(pos, memoryview(_host.zero_bytes(min(step, end - pos))))

    def _do_discard(self, offset: int, length: int) -> None:
        end = min(offset + length, self._length())
        if end <= offset:
            return
        try:
            _host.punch_hole(self.fd, offset, end - offset)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise

    def _do_block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        return file_extent(self.fd, offset, length)

    def _do_flush(self) -> None:
        os.fdatasync(self.fd)

    def zeroes_with_unmap(self) -> bool:
        """Zeroes are punched holes (file-posix's supported_zero_flags)."""
        return True

    def passthrough_fd(self) -> tuple[int, int] | None:
        if self.cache_direct or self.fd < 0 or self.detect_zeroes != "off":
            return None
        return self.fd, 0

    def _allocated_size(self) -> int | None:
        return os.fstat(self.fd).st_blocks * 512

    def exact_filename(self) -> str:
        return self.path

    def file_identity(self) -> tuple[int, int] | None:
        if self.fd < 0:
            return None
        info = os.fstat(self.fd)
        return info.st_dev, info.st_ino


def file_extent(fd: int, offset: int, length: int) -> tuple[BlockStatus, int]:
    """Data or hole at ``offset`` of an OS file, and how far it extends (find_allocation).

    Past the end of the file reads as zeroes.  Filesystems without SEEK_DATA make
    everything data, which is always safe.
    """
    size = os.fstat(fd).st_size
    if offset >= size:
        return BlockStatus.ZERO, length
    try:
        data = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            # No data from here to EOF.
            return BlockStatus.ZERO, length
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return BlockStatus.DATA, length
        raise
    if data > offset:
        return BlockStatus.ZERO, min(length, data - offset)
    try:
        hole = os.lseek(fd, offset, os.SEEK_HOLE)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EINVAL, errno.EOPNOTSUPP):
            return BlockStatus.DATA, length
        raise
    if hole <= offset:
        # Raced with a writer filling the hole; call it data.
        return BlockStatus.DATA, length
    return BlockStatus.DATA, min(length, hole - offset)


def set_nocow(fd: int) -> None:
    """FS_NOCOW_FL, best effort (only btrfs cares; failure is ignored like QEMU)."""
    fs_ioc_getflags = 0x80086601
    fs_ioc_setflags = 0x40086602
    fs_nocow_fl = 0x00800000
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, fs_ioc_getflags, buf)
        flags = int.from_bytes(buf[:4], "little") | fs_nocow_fl
        fcntl.ioctl(fd, fs_ioc_setflags, flags.to_bytes(4, "little") + bytes(4))
    except OSError:
        pass

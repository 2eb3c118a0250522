"""blockdev-create for the ``file`` driver (file-posix raw_co_create).

Like QEMU it creates the file if needed, truncates it to zero (an existing image is
overwritten, not refused), applies nocow and the extent size hint best-effort, then
grows it to ``size`` with the requested preallocation.  With preallocation=off the
first block is written with zeroes, as QEMU does to make later alignment probing
cheap, so a fresh image uses 4 KiB.  Errors are ``QMPError`` with QEMU's text: the
create job reports it as its error.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from typing import Any, Final

from qjobd.block import _host
from qjobd.block.file import open_error, set_nocow
from qjobd.errors import QMPError

__all__ = ["PREALLOCATION_MODES", "FileCreation", "create_file"]

PREALLOCATION_MODES: Final = ("off", "metadata", "falloc", "full")
_MAX_BLOCKSIZE: Final = 4096
_UINT32_MAX: Final = 0xFFFFFFFF
_FS_IOC_FSGETXATTR: Final = 0x801C581F
_FS_IOC_FSSETXATTR: Final = 0x401C5820
_FS_XFLAG_EXTSIZE: Final = 0x00000800


def create_file(filename: str, size: int, preallocation: str = "off", nocow: bool = False,
                extent_size_hint: int | None = None) -> None:
    """Create or overwrite ``filename`` as an image of ``size`` bytes (blocking)."""
    hint = 1 << 20 if extent_size_hint is None else extent_size_hint
    if hint > _UINT32_MAX:
        raise QMPError("Extent size hint is too large")
    try:
        fd = os.open(filename, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise open_error(filename, exc, "create") from exc
    try:
        _truncate(fd, 0, "off")
        if nocow:
            set_nocow(fd)
        _set_extent_size_hint(fd, hint)
        _truncate(fd, size, preallocation)
    finally:
        os.close(fd)


def _set_extent_size_hint(fd: int, hint: int) -> None:
    """FS_IOC_FSSETXATTR extent size (XFS); failures are only worth a warning."""
    try:
        buf = bytearray(28)
        fcntl.ioctl(fd, _FS_IOC_FSGETXATTR, buf)
        xflags, _extsize = struct.unpack_from("II", buf, 0)
        struct.pack_into("II", buf, 0, xflags | _FS_XFLAG_EXTSIZE, hint)
        fcntl.ioctl(fd, _FS_IOC_FSSETXATTR, bytes(buf))
    except OSError:
        pass


def _allocate_first_block(fd: int, size: int) -> None:
    try:
        os.pwrite(fd, bytes(512 if size < _MAX_BLOCKSIZE else _MAX_BLOCKSIZE), 0)
    except OSError:
        pass


def _errno_text(exc: OSError) -> str:
    return os.strerror(exc.errno or errno.EIO)


def _truncate(fd: int, size: int, preallocation: str) -> None:
    """handle_aiocb_truncate, with its messages; restores the length on failure."""
    try:
        current = os.fstat(fd).st_size
    except OSError as exc:
        raise QMPError(f"Could not stat file: {_errno_text(exc)}") from exc
    if current > size and preallocation != "off":
        raise QMPError("Cannot use preallocation for shrinking files")
    if preallocation == "off":
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            raise QMPError(f"Could not resize file: {_errno_text(exc)}") from exc
        if current == 0 and size > 0:
            _allocate_first_block(fd, size)
        return
    if preallocation not in ("falloc", "full"):
        raise QMPError(f"Unsupported preallocation mode: {preallocation}")
    try:
        if preallocation == "falloc":
            if size != current:
                try:
                    os.posix_fallocate(fd, current, size - current)
                except OSError as exc:
                    raise QMPError(
                        f"Could not preallocate new data: {_errno_text(exc)}") from exc
                if current == 0:
                    _allocate_first_block(fd, size)
            return
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            raise QMPError(f"Could not resize file: {_errno_text(exc)}") from exc
        pos = current
        step = 1 << 16
        try:
            while pos < size:
                _host.pwrite_full(fd, _host.zero_bytes(min(step, size - pos)), pos)
                pos += min(step, size - pos)
        except OSError as exc:
            raise QMPError(
                f"Could not write zeros for preallocation: {_errno_text(exc)}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise QMPError(f"Could not flush file to disk: {_errno_text(exc)}") from exc
    except QMPError:
        try:
            os.ftruncate(fd, current)
        except OSError:
            pass
        raise


class FileCreation:
    """blockdev-create with the ``file`` driver (BlockdevCreateOptionsFile).

    ``check`` is what QEMU does before the create job first yields (so a missing
    directory fails before the command replies, as in QSD); ``create`` is the rest and
    blocks, so the job runs it in a worker thread.
    """

    def __init__(self, options: Any, nodes: object = None) -> None:
        self.filename: str = options.filename
        self.size: int = options.size
        self.preallocation: str = (
            options.preallocation.value if options.preallocation is not None else "off"
        )
        self.nocow = bool(options.nocow)
        self.extent_size_hint: int | None = options.extent_size_hint

    def check(self) -> None:
        if self.extent_size_hint is not None and self.extent_size_hint > _UINT32_MAX:
            raise QMPError("Extent size hint is too large")
        try:
            fd = os.open(self.filename, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise open_error(self.filename, error, "create") from error
        os.close(fd)

    def close(self) -> None:
        """Nothing to release: the file was never a node."""

    def create(self) -> None:
        try:
            create_file(self.filename, self.size, self.preallocation, self.nocow,
                        self.extent_size_hint)
        except OverflowError as error:
            # A size past off_t's range is negative to QEMU's ftruncate.
            raise QMPError("Could not resize file: Invalid argument") from error

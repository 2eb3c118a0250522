"""The ``raw`` format driver: its child's bytes, optionally through a window.

``offset`` and ``size`` restrict the node to a slice of the child (a partition inside
a disk image, say).  Without them the node is a thin pass-through, and the copy
engine may bypass it entirely by asking for the underlying fd.
"""

from __future__ import annotations

import errno
import os
from typing import Any, ClassVar

from qjobd.block.node import SECTOR_SIZE, BlockNode, BlockStatus, ChildOpener, CommonOptions
from qjobd.errors import QMPError

_SIZE_HINT = ("Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
              "and exabytes, respectively.")


def size_option(name: str, value: int) -> int:
    """QEMU_OPT_SIZE parsing of an int option: negatives are refused."""
    if value < 0 or value >= 1 << 64:
        raise QMPError(f"Parameter '{name}' expects a non-negative number below 2^64",
                       hint=_SIZE_HINT)
    return value


class RawNode(BlockNode):
    """See the module docstring."""

    format_name = "raw"
    strong_options: ClassVar[tuple[str, ...]] = ("offset", "size")
    early_children: ClassVar[tuple[str, ...]] = ("file",)

    def __init__(self, options: dict[str, Any], common: CommonOptions) -> None:
        super().__init__(options, common)
        self.offset = 0
        self.size: int | None = None

    def open(self, open_child: ChildOpener) -> None:
        """raw_open: attach "file", then check the window against its length."""
        file = open_child("file")
        # QemuOpts walks the options in QDict order, which puts offset before size.
        offset = size_option("offset", self.options.get("offset", 0))
        size = self.options.get("size")
        if size is not None:
            size = size_option("size", size)
        real_size = file.length()
        if offset > real_size:
            raise QMPError(f"Offset ({offset}) cannot be greater than size of the "
                           f"containing file ({real_size})")
        if size is not None and real_size - offset < size:
            raise QMPError(f"The sum of offset ({offset}) and size ({size}) has to be "
                           f"smaller or equal to the  actual size of the containing file "
                           f"({real_size})")
        if size is not None and size % SECTOR_SIZE:
            raise QMPError(f"Specified size is not multiple of {SECTOR_SIZE}")
        self.offset = offset
        self.size = size

    @property
    def file(self) -> BlockNode:
        return self.child_edges[0].node

    def _get_info(self) -> tuple[int, bool] | None:
        # raw_get_info asks the file child.
        return self.file._get_info()

    def zeroes_with_unmap(self) -> bool:
        # raw_open: the file child's zero flags.
        return self.file.zeroes_with_unmap()

    def _length(self) -> int:
        if self.size is not None:
            return self.size
        return max(0, self.file.length() - self.offset)

    def _grow(self, size: int) -> None:
        """raw_co_truncate: the file grows under the offset; a fixed size cannot."""
        if self.size is not None:
            raise QMPError("Cannot resize fixed-size raw disks")
        self.file.grow(self.offset + size)

    def _window(self, offset: int, length: int, write: bool) -> None:
        """raw_adjust_offset: nothing may leak out of an explicit size."""
        if self.size is not None and (offset > self.size or length > self.size - offset):
            code = errno.ENOSPC if write else errno.EINVAL
            raise OSError(code, os.strerror(code))

    def _do_preadv(self, offset: int, buffer: memoryview) -> None:
        self._window(offset, len(buffer), False)
        file = self.file
        file.debug_event("read_aio")
        file.readinto(offset + self.offset, buffer)

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        self._window(offset, len(data), True)
        file = self.file
        file.debug_event("write_aio")
        file.pwrite(offset + self.offset, data)

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        self._window(offset, length, True)
        self.file.write_zeroes(offset + self.offset, length, may_unmap=may_unmap)

    def _do_discard(self, offset: int, length: int) -> None:
        self._window(offset, length, True)
        self.file.discard(offset + self.offset, length)

    def _do_block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        return self.file.block_status(offset + self.offset, length)

    def _primary_offset(self, offset: int) -> int:
        return offset + self.offset

    def passthrough_fd(self) -> tuple[int, int] | None:
        inner = self.file.passthrough_fd()
        if inner is None or self.detect_zeroes != "off":
            return None
        fd, shift = inner
        return fd, shift + self.offset

"""The ``null-co`` protocol driver: a bottomless device for tests and benchmarks.

Writes are dropped; reads return zeroes (QEMU leaves the buffer untouched unless
read-zeroes is set, which for a Python caller means zeroes anyway).  What read-zeroes
still changes is block status, exactly as in QEMU: only with it does the node claim
to read as zeroes, so a copy from a plain null-co node really copies data.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from qjobd.block import _host
from qjobd.block.node import BlockNode, BlockStatus, ChildOpener, CommonOptions
from qjobd.block.raw import size_option

DEFAULT_SIZE = 1 << 30


class NullNode(BlockNode):
    """See the module docstring."""

    format_name = "null-co"
    is_protocol: ClassVar[bool] = True
    strong_options: ClassVar[tuple[str, ...]] = ("size", "read-zeroes")

    def __init__(self, options: dict[str, Any], common: CommonOptions) -> None:
        super().__init__(options, common)
        self.size = DEFAULT_SIZE
        self.read_zeroes = bool(options.get("read-zeroes", False))
        self.latency_ns = int(options.get("latency-ns", 0))

    def open(self, open_child: ChildOpener) -> None:
        """Size is a QEMU_OPT_SIZE (QSD 7.2 aborts on a negative one; we refuse it)."""
        self.size = size_option("size", self.options.get("size", DEFAULT_SIZE))

    def _length(self) -> int:
        return self.size

    def _delay(self) -> None:
        if self.latency_ns:
            time.sleep(self.latency_ns / 1e9)

    def _do_preadv(self, offset: int, buffer: memoryview) -> None:
        self._delay()
        buffer[:] = _host.zero_bytes(len(buffer))

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        self._delay()

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        self._delay()

    def _do_block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        return (BlockStatus.ZERO if self.read_zeroes else BlockStatus.DATA), length

    def _allocated_size(self) -> int | None:
        return 0

    def exact_filename(self) -> str:
        """"null-co://" unless a strong option (size, read-zeroes) was given."""
        if set(self.full_open_options()) - {"driver", "filename", "latency-ns"}:
            return ""
        return "null-co://"

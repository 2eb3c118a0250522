"""Pass-through filter nodes that jobs insert into the graph.

QSD shows such nodes in query-named-block-nodes: a backup adds a ``copy-before-write``
node above its source, mirror a ``mirror_top``, commit a ``commit_top``, stream a
``copy-on-read``.  This class gives them a name, a place in the graph and the
filter behaviour queries rely on (the child's filename, "backing-image" nesting);
job code subclasses it to intercept writes (copy-before-write) when it needs to.
"""

from __future__ import annotations

from typing import Any

from qjobd.block.node import BlockNode, BlockStatus, CommonOptions


class FilterNode(BlockNode):
    """A filter whose I/O goes straight to its ``file`` child."""

    is_filter = True

    def __init__(self, format_name: str, common: CommonOptions | None = None,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(dict(options or {"driver": format_name}), common or CommonOptions())
        self.format_name = format_name

    @property
    def file(self) -> BlockNode:
        return self.child_edges[0].node

    def _length(self) -> int:
        return self.file.length()

    def _do_preadv(self, offset: int, buffer: memoryview) -> None:
        self.file.readinto(offset, buffer)

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        self.file.pwrite(offset, data)

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        self.file.write_zeroes(offset, length, may_unmap=may_unmap)

    def _do_discard(self, offset: int, length: int) -> None:
        self.file.discard(offset, length)

    def _do_block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        return self.file.block_status(offset, length)

    def exact_filename(self) -> str:
        return self.file.exact_filename()

    @property
    def filename(self) -> str:
        """Job filters report their child's name (as QSD shows for copy-before-write)."""
        return self.file.filename

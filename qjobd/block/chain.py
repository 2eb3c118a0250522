"""Backing chains: walking them, finding images in them, what lies above a base.

A chain runs from a node down through filters and backing files
(``filtered_or_backing``).  Stream and commit copy what the images between two
points of a chain allocate; these helpers say where that is, as QEMU's
bdrv_is_allocated_above and bdrv_find_backing_image do.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from qjobd.block.copy import copy_chunk
from qjobd.block.node import BlockNode


def below(top: BlockNode, base: BlockNode | None) -> Iterator[BlockNode]:
    """The nodes under ``top`` down to ``base`` (excluded; None: the whole chain)."""
    node = top.filtered_or_backing
    while node is not None and node is not base:
        yield node
        node = node.filtered_or_backing


def contains(top: BlockNode, node: BlockNode) -> bool:
    """bdrv_chain_contains: ``node`` is ``top`` or somewhere under it."""
    current: BlockNode | None = top
    while current is not None:
        if current is node:
            return True
        current = current.filtered_or_backing
    return False


def find_overlay(top: BlockNode, node: BlockNode) -> BlockNode | None:
    """bdrv_find_overlay: the node of ``top``'s chain right above ``node``."""
    current = top
    while (below := current.filtered_or_backing) is not None:
        if below is node:
            return current
        current = below
    return None


def find_backing_image(top: BlockNode, name: str) -> BlockNode | None:
    """bdrv_find_backing_image: the image of the chain called ``name``.

    A name matches a backing node's filename, or the name its overlay stores for
    it, made absolute against the overlay's directory when relative.
    """
    overlay = top
    while (backing := overlay.filtered_or_backing) is not None:
        if not overlay.is_filter:
            stored = overlay.auto_backing_file
            candidates = {backing.filename, stored}
            if stored and not stored.startswith("/"):
                directory = posixpath.dirname(overlay.filename)
                candidates.add(posixpath.normpath(posixpath.join(directory, stored)))
            if name in candidates or posixpath.normpath(name) in candidates:
                return backing
        overlay = backing
    return None


def allocated_above(top: BlockNode, base: BlockNode | None, offset: int,
                    length: int) -> tuple[bool, int]:
    """bdrv_is_allocated_above with include_base false: whether some node from
    ``top`` down to (not including) ``base`` allocates the range's start, and for
    how many bytes the answer holds."""
    count = length
    node: BlockNode | None = top
    while node is not None and node is not base:
        allocated, here = node.allocated_here(offset, count)
        if allocated:
            return True, here
        count = min(count, here)
        node = node.filtered_or_backing
    return False, count


def copy_allocated(source: BlockNode, chain_top: BlockNode | None, base: BlockNode | None,
                   target: BlockNode, offset: int, length: int) -> tuple[int, bool]:
    """One step of stream and commit (blocking): if an image from ``chain_top`` down
    to ``base`` allocates the range's start, read it through ``source`` and write
    it into ``target``.  Returns (bytes covered, whether they were copied).

    Zero ranges become zero writes, so the target stays sparse.  Raises CopyError
    (from the copy engine) naming the side that failed.
    """
    if chain_top is None:
        return length, False
    above, count = allocated_above(chain_top, base, offset, length)
    if not above:
        return count, False
    # The copy engine: zero extents as zero writes, data file to file where it can;
    # the job flushes the target at the end, so its disk writes start at once.
    copy_chunk(source, target, offset, count, write_behind=True)
    return count, True

"""Backing chains: walking them, finding images in them, what lies above a base.

A chain runs from a node down through filters and backing files
(``filtered_or_backing``).  Stream and commit copy what the images between two
points of a chain allocate, and ``sync: top`` backups and mirrors what the top
image allocates; these helpers say where that is, as QEMU's
bdrv_is_allocated_above, bdrv_backing_chain_next and bdrv_find_backing_image do.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from qjobd.block.copy import copy_chunk
from qjobd.block.filter import FilterNode
from qjobd.block.node import BlockNode


def skip_filters(node: BlockNode) -> BlockNode:
    """bdrv_skip_filters: the first node at or below ``node`` that is not a filter."""
    while (below := node.filtered) is not None:
        node = below
    return node


def skip_implicit_filters(node: BlockNode) -> BlockNode:
    """bdrv_skip_implicit_filters: past the filters jobs inserted without a name the
    client gave (they must not appear in a backing file name)."""
    while isinstance(node, FilterNode) and node.generated_name and node.filtered:
        node = node.filtered
    return node


def backing_chain_next(node: BlockNode) -> BlockNode | None:
    """bdrv_backing_chain_next: the image below ``node``'s image, filters skipped
    on both sides; None when it has no backing file (open)."""
    backing = skip_filters(node).backing
    return skip_filters(backing) if backing is not None else None


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


def allocated_ranges(top: BlockNode, base: BlockNode | None,
                     length: int) -> list[tuple[int, int]]:
    """The ranges of ``[0, length)`` that a node from ``top`` down to (not including)
    ``base`` allocates, merged, in order (blocking: it reads image metadata).

    What a mirror marks dirty before its first pass (mirror_dirty_init), and what
    a ``sync: top`` backup copies (base: the top image's backing file).
    """
    ranges: list[tuple[int, int]] = []
    offset = 0
    while offset < length:
        allocated, count = allocated_above(top, base, offset, length - offset)
        count = max(1, count)
        if allocated:
            if ranges and ranges[-1][0] + ranges[-1][1] == offset:
                ranges[-1] = (ranges[-1][0], ranges[-1][1] + count)
            else:
                ranges.append((offset, count))
        offset += count
    return ranges


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

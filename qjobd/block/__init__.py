"""The block layer: nodes, drivers, the graph, the copy engine, image creation.

Plain synchronous code.  Graph changes run on the event-loop thread; node I/O
(``pread``/``pwrite``/``copy_chunk`` ...) blocks and is meant for worker threads via
``trio.to_thread.run_sync``.  Client-visible failures are ``QMPError`` with
qemu-storage-daemon 7.2's wording; I/O failures are ``OSError`` (``CopyError`` in the
copy engine, telling source from target).
"""

from qjobd.block.copy import CopyError, CopyResult, copy_all, copy_chunk
from qjobd.block.create import create_file
from qjobd.block.filter import FilterNode
from qjobd.block.graph import (
    BlockGraph,
    OpBlocker,
    Permission,
    job_blocker_reason,
)
from qjobd.block.node import PERM_ALL, PERM_NONE, BlockNode, BlockStatus, EdgeKind, Perm

__all__ = [
    "PERM_ALL",
    "PERM_NONE",
    "BlockGraph",
    "BlockNode",
    "BlockStatus",
    "CopyError",
    "CopyResult",
    "EdgeKind",
    "FilterNode",
    "OpBlocker",
    "Perm",
    "Permission",
    "copy_all",
    "copy_chunk",
    "create_file",
    "job_blocker_reason",
]

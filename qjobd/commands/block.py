"""Handlers of the block node commands in schema/block-core.json.

``blockdev-add``, ``blockdev-del`` and ``query-named-block-nodes`` are thin: the block
graph (``daemon.block``) does the work and raises ``QMPError`` with
qemu-storage-daemon 7.2's texts.

The schema accepts every ``BlockdevDriver`` name, but only some drivers are
implemented.  QSD has them all, so no reply of its own fits; qjobd answers the way
QEMU answers for a driver that is not built in or whose module is missing
(``bdrv_fill_options``): ``Unknown driver 'nbd'``, at the point where the node is
opened, so checks that QEMU makes earlier still come first.
"""

from __future__ import annotations

from typing import Any

from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler


@handler("blockdev-add")
async def blockdev_add(context: CommandContext, arguments: Any) -> None:
    options = context.services.model.unstructure("BlockdevOptions", arguments)
    context.services.block.add(options)


@handler("blockdev-del")
async def blockdev_del(context: CommandContext, arguments: Any) -> None:
    context.services.block.delete(arguments.node_name)


@handler("query-named-block-nodes")
async def query_named_block_nodes(context: CommandContext, arguments: Any) -> Any:
    flat = bool(arguments.flat)
    nodes = context.services.block.query_named_block_nodes(flat)
    return context.services.model.structure("BlockDeviceInfoList", nodes)

"""Handler of block-stream (schema/block-core.json).

The checks are qmp_block_stream's, in its order and with its texts; the job is
:mod:`qjobd.jobdrivers.stream`.
"""

from __future__ import annotations

from typing import Any

from qjobd.block import BlockNode, chain
from qjobd.commands.arguments import one_policy_options
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobdrivers.stream import StreamOptions, setup_stream


@handler("block-stream")
async def block_stream(context: CommandContext, arguments: Any) -> None:
    graph = context.services.block
    device: str = arguments.device
    base_name, base_node_name, bottom_name = (arguments.base, arguments.base_node,
                                              arguments.bottom)
    if base_name is not None and base_node_name is not None:
        raise QMPError("'base' and 'base-node' cannot be specified at the same time")
    if base_name is not None and bottom_name is not None:
        raise QMPError("'base' and 'bottom' cannot be specified at the same time")
    if bottom_name is not None and base_node_name is not None:
        raise QMPError("'bottom' and 'base-node' cannot be specified at the same time")
    top = graph.lookup(device)
    base: BlockNode | None = None
    if base_name is not None:
        base = chain.find_backing_image(top, base_name)
        if base is None:
            raise QMPError(f"Can't find '{base_name}' in the backing chain")
    if base_node_name is not None:
        found = graph.lookup(base_node_name, node_name_only=True)
        if found is top or not chain.contains(top, found):
            raise QMPError(f"Node '{base_node_name}' is not a backing image of '{device}'")
        base = found
    if bottom_name is not None:
        bottom = graph.lookup(bottom_name, node_name_only=True)
        if bottom.is_filter:
            raise QMPError(f"Node '{bottom_name}' is a filter, use a non-filter node as "
                           "'bottom'")
        if not chain.contains(top, bottom):
            raise QMPError(f"Node '{bottom_name}' is not in a chain starting from "
                           f"'{device}'")
        base = bottom.filtered_or_backing
    for node in (top, *chain.below(top, base)):
        graph.check_op(node, "stream")
    if base is None and arguments.backing_file is not None:
        raise QMPError("backing file specified, but streaming the entire chain")
    options = StreamOptions(common=one_policy_options(context, arguments), top=top, base=base,
                            backing_file=arguments.backing_file,
                            filter_node_name=arguments.filter_node_name)
    context.services.jobs.start(setup_stream(graph, context.services.jobs, options))

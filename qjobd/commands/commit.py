"""Handler of block-commit (schema/block-core.json).

The checks are qmp_block_commit's, in its order and with its texts; the job is
:mod:`qjobd.jobdrivers.commit`.  Committing the active layer is the mirror-like
active commit (:class:`qjobd.jobdrivers.mirror.ActiveCommitDriver`).
"""

from __future__ import annotations

from typing import Any

from qjobd.block import BlockGraph, BlockNode, Perm, chain
from qjobd.commands.arguments import one_policy_options
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import DeviceNotFound, QMPError
from qjobd.jobdrivers.commit import CommitOptions, setup_commit
from qjobd.jobdrivers.mirror import MirrorDriver, MirrorOptions, setup_mirror


def _root(graph: BlockGraph, device: str) -> BlockNode:
    """qmp_get_root_bs, with the DeviceNotFound class libvirt probes for."""
    node = graph.find(device)
    if node is None:
        raise DeviceNotFound(f"Device '{device}' not found")
    if not graph.is_root_node(node):
        raise QMPError("Need a root block node")
    return node


@handler("block-commit")
async def block_commit(context: CommandContext, arguments: Any) -> None:
    graph = context.services.block
    device_name: str = arguments.device
    device = _root(graph, device_name)
    graph.check_op(device, "commit-source")
    top: BlockNode | None = device
    if arguments.top_node is not None and arguments.top is not None:
        raise QMPError("'top-node' and 'top' are mutually exclusive")
    if arguments.top_node is not None:
        top = graph.lookup(arguments.top_node, node_name_only=True)
        if not chain.contains(device, top):
            raise QMPError(f"'{arguments.top_node}' is not in this backing file chain")
    elif arguments.top and device.filename != arguments.top:
        top = chain.find_backing_image(device, arguments.top)
    if top is None:
        raise QMPError(f"Top image file {arguments.top or 'NULL'} not found")
    if arguments.base_node is not None and arguments.base is not None:
        raise QMPError("'base-node' and 'base' are mutually exclusive")
    base: BlockNode
    if arguments.base_node is not None:
        base = graph.lookup(arguments.base_node, node_name_only=True)
        if not chain.contains(top, base):
            raise QMPError(f"'{arguments.base_node}' is not in this backing file chain")
    elif arguments.base:
        found = chain.find_backing_image(top, arguments.base)
        if found is None:
            raise QMPError(f"Can't find '{arguments.base}' in the backing chain")
        base = found
    else:
        # bdrv_find_base: the bottom of the chain (the top itself without backing).
        base = top
        for node in chain.below(top, None):
            base = node
    for node in (top, *chain.below(top, base.filtered_or_backing)):
        graph.check_op(node, "commit-target")
    if top is base:
        raise QMPError("cannot commit an image into itself")
    common = one_policy_options(context, arguments)
    perm, _ = top.cumulative_perms()
    active = chain.skip_filters(top) is chain.skip_filters(device)
    if perm & Perm.WRITE or active:
        if arguments.backing_file is not None:
            if active:
                raise QMPError("'backing-file' specified, but 'top' is the active layer")
            raise QMPError("'backing-file' specified, but 'top' has a writer on it")
        # commit_active_start: a mirror of what lies above the base into it.
        mirror = MirrorOptions(common=common, source=top, target=base, sync="full",
                               filter_node_name=arguments.filter_node_name,
                               commit_base=base)
        job = setup_mirror(graph, context.services.jobs, mirror)
        context.services.jobs.start(job)
        assert isinstance(job.driver, MirrorDriver)
        if job.driver.starts_ready:
            await job.settle()
        return
    overlay = chain.find_overlay(device, top)
    assert overlay is not None
    graph.check_op(overlay, "commit-target")
    if chain.skip_filters(top) is chain.skip_filters(base):
        raise QMPError("Invalid files for merge: top and base are the same")
    options = CommitOptions(common=common, device=device, top=top, base=base,
                            overlay=overlay, backing_file=arguments.backing_file,
                            filter_node_name=arguments.filter_node_name)
    context.services.jobs.start(setup_commit(graph, context.services.jobs, options))

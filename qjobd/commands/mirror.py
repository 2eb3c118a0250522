"""Handlers of blockdev-mirror and drive-mirror (schema/block-core.json).

Both resolve their node names the way qemu-storage-daemon 7.2 does, then hand over to
:func:`qjobd.jobdrivers.mirror.setup_mirror`, which makes the remaining checks in
QEMU's order.  ``drive-mirror`` first creates (or, with ``mode=existing``, opens) its
target image, as qmp_drive_mirror does: a file it created stays even when a later
check fails, while the node it opened is closed again.  For ``sync=top`` the new
image names the source's backing file (by absolute name), for ``sync=none`` the
source; either way the target opens without its backing file and gets it when the
job ends (``mode=existing``: the one its header names).

Which formats it can create and open is the format registry's business
(:class:`qjobd.block.formats.FormatRegistry`).  ``unmap=false`` is accepted but
changes nothing: zero areas of the source always become holes in the target.

The reply comes before the job's first events except when QEMU runs the job up to
its first wait inside the command: ``sync=none`` and empty sources are ready at once,
so for them the handler lets the job reach ``ready`` before it answers.
"""

from __future__ import annotations

from typing import Any

from qjobd.block import BlockGraph, BlockNode, chain
from qjobd.commands.arguments import block_job_options, value
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobdrivers.mirror import MirrorDriver, MirrorOptions, setup_mirror
from qjobd.jobs.job import Job


def root_node(graph: BlockGraph, name: str) -> BlockNode:
    """qmp_get_root_bs: the named node, which nothing but backends may use."""
    node = graph.lookup(name)
    if not graph.is_root_node(node):
        raise QMPError("Need a root block node")
    return node


def _mirror_options(context: CommandContext, arguments: Any, source: BlockNode,
                    target: BlockNode, sync: str, **extra: Any) -> MirrorOptions:
    """The options blockdev-mirror and drive-mirror share, with QEMU's defaults."""
    return MirrorOptions(
        common=block_job_options(context, arguments),
        source=source, target=target, sync=sync,
        replaces=arguments.replaces,
        granularity=value(arguments.granularity, 0),
        buf_size=value(arguments.buf_size, 0),
        copy_mode=value(arguments.copy_mode, "background"),
        **extra,
    )


async def _start(context: CommandContext, job: Job) -> None:
    """Start the job; one that QEMU makes ready inside the command gets there first."""
    context.services.jobs.start(job)
    assert isinstance(job.driver, MirrorDriver)
    if job.driver.starts_ready:
        await job.settle()


@handler("blockdev-mirror")
async def blockdev_mirror(context: CommandContext, arguments: Any) -> None:
    graph = context.services.block
    source = root_node(graph, arguments.device)
    target = graph.lookup(arguments.target)
    sync = value(arguments.sync)
    # Asked before top may turn into full (qmp_blockdev_mirror).
    options = _mirror_options(context, arguments, source, target, sync,
                              filter_node_name=arguments.filter_node_name,
                              zero_target=sync == "full")
    await _start(context, setup_mirror(graph, context.services.jobs, options))


@handler("drive-mirror")
async def drive_mirror(context: CommandContext, arguments: Any) -> None:
    services = context.services
    graph = services.block
    source = root_node(graph, arguments.device)
    # Checked early so that no image is created for a busy source.
    graph.check_op(source, "mirror-source")
    mode = value(arguments.mode, "absolute-paths")
    fmt: str | None = arguments.format
    if fmt is None and mode != "existing":
        fmt = source.format_name
    sync = value(arguments.sync)
    # What the target is to have below it: the source's backing file for
    # sync=top (without one, top is full), the source for sync=none.
    target_backing = chain.skip_filters(source).backing
    if target_backing is None and sync == "top":
        sync = "full"
    if sync == "none":
        target_backing = source
    size = source.length()
    if arguments.replaces is not None and arguments.node_name is None:
        raise QMPError("a node-name must be provided when replacing a named node of the "
                       "graph")
    path = arguments.target
    if mode != "existing":
        assert fmt is not None
        backing = None if sync == "full" or target_backing is None \
            else chain.skip_implicit_filters(target_backing)
        services.formats.create_image(fmt, path, size, backing=backing)
    # The target opens without its backing file (BDRV_O_NO_BACKING): the job
    # copies what the target will not get from it, and attaches it at the end.
    top: dict[str, Any] = {} if arguments.node_name is None else {
        "node-name": arguments.node_name}
    if source.discard_unmap:
        top["discard"] = "unmap"  # the source's open flags are the target's
    if fmt is None:
        fmt = services.formats.probe(path)
    if services.formats.supports_backing(fmt):
        top["backing"] = None
    target = graph.open_implicit(services.formats.open_options(fmt, path, **top))
    options = _mirror_options(
        context, arguments, source, target, sync, implicit_target=True,
        backing_mode="source" if mode == "absolute-paths" else "open",
        # A target qjobd just created reads as zeroes (bdrv_has_zero_init).
        zero_target=sync == "full" and mode == "existing")
    try:
        job = setup_mirror(graph, services.jobs, options)
    except BaseException:
        graph.release_implicit(target)
        raise
    await _start(context, job)

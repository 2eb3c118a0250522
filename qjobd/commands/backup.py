"""Handlers of blockdev-backup and drive-backup (schema/block-core.json).

Both are, as in QEMU, transactions of one action (:mod:`qjobd.commands.actions`):
the ``prepare_*`` functions here are also the ``transaction`` command's backup
actions.  drive-backup opens (and unless ``mode`` is ``existing`` first creates) its
target as nodes nobody named; they close when the job ends.  A new target of
``sync: top`` names the source's backing file as its own (by absolute name), and
the target opens with that chain; ``sync: none`` names the source itself, which
becomes the target's backing node.  Which formats it can
create and open is the format registry's business
(:class:`qjobd.block.formats.FormatRegistry`).
"""

from __future__ import annotations

from typing import Any

import attrs

from qjobd.block import BlockNode, chain
from qjobd.commands.actions import Action, perform
from qjobd.commands.arguments import block_job_options, value
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobdrivers.backup import (
    DEFAULT_MAX_WORKERS,
    BackupOptions,
    check_bitmap_options,
    setup_backup,
)
from qjobd.jobs.job import Job
from qjobd.jobs.transaction import Transaction

__all__ = ["prepare_blockdev_backup", "prepare_drive_backup"]


def backup_options(context: CommandContext, arguments: Any) -> BackupOptions:
    """The BackupCommon members after QEMU's defaults."""
    perf = arguments.x_perf
    return BackupOptions(
        common=block_job_options(context, arguments),
        sync=value(arguments.sync),
        bitmap=arguments.bitmap,
        bitmap_mode=value(arguments.bitmap_mode),
        compress=bool(arguments.compress),
        filter_node_name=arguments.filter_node_name,
        use_copy_range=bool(value(perf.use_copy_range, True)) if perf else True,
        max_workers=value(perf.max_workers, DEFAULT_MAX_WORKERS) if perf
        else DEFAULT_MAX_WORKERS,
        max_chunk=value(perf.max_chunk, 0) if perf else 0,
    )


def prepare_blockdev_backup(context: CommandContext, arguments: Any) -> Action:
    """blockdev_backup_prepare, bound to its arguments."""

    def prepare(txn: Transaction | None) -> Job:
        graph = context.services.block
        source = graph.lookup(arguments.device)
        target = graph.lookup(arguments.target)
        options = backup_options(context, arguments)
        check_bitmap_options(options)
        return setup_backup(graph, context.services.jobs, source, target, options, txn=txn)

    return prepare


def prepare_drive_backup(context: CommandContext, arguments: Any) -> Action:
    """drive_backup_prepare, bound to its arguments."""

    def prepare(txn: Transaction | None) -> Job:
        services = context.services
        graph = services.block
        mode = value(arguments.mode, "absolute-paths")
        source = graph.lookup(arguments.device)
        fmt: str | None = arguments.format
        if fmt is None and mode != "existing":
            fmt = source.format_name
        graph.check_op(source, "backup-source")
        options = backup_options(context, arguments)
        # What a new target names as its backing file: the source's own backing
        # file for sync=top (without one, top is full), the source for sync=none.
        backing: BlockNode | None = None
        if options.sync == "top":
            backing = chain.skip_filters(source).backing
            if backing is None:
                options = attrs.evolve(options, sync="full")
        if options.sync == "none":
            backing = source
        path: str = arguments.target
        if mode != "existing":
            assert fmt is not None
            services.formats.create_image(
                fmt, path, source.length(),
                backing=None if backing is None else chain.skip_implicit_filters(backing))
        # Zeroes the job writes become holes in the new target.
        top: dict[str, Any] = {"discard": "unmap", "detect-zeroes": "unmap"}
        if options.sync == "none" and services.formats.supports_backing(
                fmt or services.formats.probe(path)):
            # The source itself backs the target, not a second node on its file.
            top["backing"] = source.node_name
        target = graph.open_implicit(services.formats.open_options(fmt, path, **top))
        try:
            if options.sync == "none" and not services.formats.supports_backing(
                    target.format_name):
                # The source would become the target's backing file.
                raise QMPError(f"Driver '{target.format_name}' of node '{target.node_name}' "
                               "does not support backing files")
            check_bitmap_options(options)
            return setup_backup(graph, services.jobs, source, target, options, txn=txn,
                                target_zeroed=mode != "existing", owns_target=True)
        except BaseException:
            graph.release_implicit(target)
            raise

    return prepare


@handler("blockdev-backup")
async def blockdev_backup(context: CommandContext, arguments: Any) -> None:
    await perform(context, [prepare_blockdev_backup(context, arguments)], grouped=False)


@handler("drive-backup")
async def drive_backup(context: CommandContext, arguments: Any) -> None:
    await perform(context, [prepare_drive_backup(context, arguments)], grouped=False)

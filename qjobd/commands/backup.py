"""Handlers of blockdev-backup, drive-backup and blockdev-create (schema/block-core.json).

blockdev-backup and drive-backup are, as in QEMU, transactions of one action: the
action is *prepared* (every check, the graph changes, the job created) and then
*committed* (the job started).  :func:`perform` runs that protocol for any number of
actions, which is all the ``transaction`` command adds.

drive-backup opens (and unless ``mode`` is ``existing`` first creates) its target as
nodes nobody named; they close when the job ends.  qjobd writes raw images only for
now: the ``raw`` and ``file`` formats.  Formats QEMU knows but qjobd does not (qcow2)
are refused with a clear message; the others get QEMU's words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from qjobd.block import create_file
from qjobd.block.file import open_error
from qjobd.block.graph import DRIVERS
from qjobd.commands import CommandContext, handler
from qjobd.errors import QMPError
from qjobd.jobdrivers.backup import BackupOptions, check_bitmap_options, setup_backup
from qjobd.jobdrivers.create import CreateDriver, FileCreation
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import Job
from qjobd.jobs.manager import Transaction
from qjobd.model.errors import ArgumentError

__all__ = ["Action", "perform", "prepare_blockdev_backup", "prepare_drive_backup"]

#: Formats drive-backup can create and open.
TARGET_FORMATS: Final = ("raw", "file")

#: The first bytes of a qcow2 image (probing an existing target).
QCOW2_MAGIC: Final = b"QFI\xfb"

#: Prepares one action: checks, graph changes, the job created in ``txn`` but not
#: started.  Returns the job (None for actions without one) or raises QMPError.
Action = Callable[[Transaction | None], Job | None]


def unsupported_format(fmt: str) -> QMPError:
    return QMPError(f"Image format '{fmt}' is not supported by qjobd yet")


async def perform(context: CommandContext, actions: list[Action], *, grouped: bool) -> None:
    """QEMU's qmp_transaction: prepare every action, then start every job.

    When an action fails to prepare, the jobs already created are cancelled, newest
    first (each goes aborting, concluded, null), and its error is the reply.  With
    ``grouped`` the jobs share one Transaction: they complete or fail together.
    """
    manager = context.daemon.jobs
    txn = Transaction() if grouped else None
    created: list[Job] = []
    try:
        for action in actions:
            job = action(txn)
            if job is not None:
                created.append(job)
    except BaseException:
        for job in reversed(created):
            if job.status != JobStatus.NULL:
                manager.cancel(job, force=True)
        raise
    for job in created:
        manager.start(job)
    for job in created:
        await job.settle()


# Section: blockdev-backup and drive-backup


def prepare_blockdev_backup(context: CommandContext, arguments: Any) -> Action:
    """blockdev_backup_prepare, bound to its arguments."""

    def prepare(txn: Transaction | None) -> Job:
        graph = context.daemon.block
        source = graph.lookup(arguments.device)
        target = graph.lookup(arguments.target)
        options = BackupOptions(arguments)
        check_bitmap_options(options)
        return setup_backup(graph, context.daemon.jobs, source, target, options, txn=txn,
                            request_id=context.request_id)

    return prepare


def prepare_drive_backup(context: CommandContext, arguments: Any) -> Action:
    """drive_backup_prepare, bound to its arguments."""

    def prepare(txn: Transaction | None) -> Job:
        graph = context.daemon.block
        mode = arguments.mode.value if arguments.mode is not None else "absolute-paths"
        source = graph.lookup(arguments.device)
        fmt: str | None = arguments.format
        if fmt is None and mode != "existing":
            fmt = source.format_name
        graph.check_op(source, "backup-source")
        options = BackupOptions(arguments)
        if options.sync == "top":
            options.sync = "full"  # qjobd's nodes have no backing files
        path: str = arguments.target
        size = source.length()
        if mode != "existing":
            assert fmt is not None
            _create_target(context, path, fmt, size, backing=options.sync == "none")
        target = graph.open_implicit(_target_options(context, path, fmt))
        try:
            if options.sync == "none":
                # The source would become the target's backing file.
                raise QMPError(f"Driver '{target.format_name}' of node '{target.node_name}' "
                               "does not support backing files")
            check_bitmap_options(options)
            return setup_backup(graph, context.daemon.jobs, source, target, options, txn=txn,
                                target_zeroed=mode != "existing", owns_target=True,
                                request_id=context.request_id)
        except BaseException:
            graph.release_implicit(target)
            raise

    return prepare


def _known_driver(context: CommandContext, name: str) -> bool:
    try:
        context.daemon.model.structure("BlockdevDriver", name)
    except (ArgumentError, ValueError, TypeError, KeyError):
        return False
    return True


def _create_target(context: CommandContext, path: str, fmt: str, size: int,
                   backing: bool) -> None:
    """bdrv_img_create for drive-backup's target (a new raw image)."""
    if not _known_driver(context, fmt):
        raise QMPError(f"Unknown file format '{fmt}'")
    if fmt not in TARGET_FORMATS:
        if fmt in DRIVERS:
            raise QMPError(f"Format driver '{fmt}' does not support image creation")
        raise unsupported_format(fmt)
    if backing:
        # sync=none gives the new image the source as its backing file.
        raise QMPError(f"Backing file not supported for file format '{fmt}'")
    create_file(path, size)


def _target_options(context: CommandContext, path: str, fmt: str | None) -> dict[str, Any]:
    """The options QEMU opens drive-backup's target with (zeroes become holes)."""
    if fmt is None:
        fmt = _probe(path)
    if fmt not in TARGET_FORMATS:
        if not _known_driver(context, fmt):
            raise QMPError(f"Unknown driver '{fmt}'")
        if fmt in ("null-co", "null-aio"):
            raise QMPError(f"The only allowed filename for this driver is '{fmt}://'")
        raise unsupported_format(fmt)
    zeroes = {"discard": "unmap", "detect-zeroes": "unmap"}
    if fmt == "file":
        return {"driver": "file", "filename": path, **zeroes}
    return {"driver": "raw", **zeroes, "file": {"driver": "file", "filename": path}}


def _probe(path: str) -> str:
    """The format of an existing image: qcow2 by its magic, raw otherwise."""
    try:
        with open(path, "rb") as image:
            head = image.read(len(QCOW2_MAGIC))
    except OSError as error:
        raise open_error(path, error) from error
    return "qcow2" if head == QCOW2_MAGIC else "raw"


@handler("blockdev-backup")
async def blockdev_backup(context: CommandContext, arguments: Any) -> None:
    await perform(context, [prepare_blockdev_backup(context, arguments)], grouped=False)


@handler("drive-backup")
async def drive_backup(context: CommandContext, arguments: Any) -> None:
    await perform(context, [prepare_drive_backup(context, arguments)], grouped=False)


# Section: blockdev-create


@handler("blockdev-create")
async def blockdev_create(context: CommandContext, arguments: Any) -> None:
    options = arguments.options
    driver = options.driver.value
    if driver == "file":
        creation = FileCreation(options.u)
        job_driver = CreateDriver(creation.check, creation.create)
    elif driver == "qcow2":
        raise unsupported_format("qcow2")
    else:
        raise QMPError("Driver does not support blockdev-create")
    job = context.daemon.jobs.create(arguments.job_id, job_driver, auto_dismiss=False,
                                     request_id=context.request_id)
    context.daemon.jobs.start(job)
    await job.settle()

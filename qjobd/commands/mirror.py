"""Handlers of blockdev-mirror and drive-mirror (schema/block-core.json).

Both resolve their node names the way qemu-storage-daemon 7.2 does, then hand over to
:func:`qjobd.jobdrivers.mirror.setup_mirror`, which makes the remaining checks in
QEMU's order.  ``drive-mirror`` first creates (or, with ``mode=existing``, opens) its
target image, as qmp_drive_mirror does: a file it created stays even when a later
check fails, while the node it opened is closed again.

qjobd creates and opens ``raw`` and ``file`` images only.  Other formats QEMU knows
are answered with QEMU's own text where QEMU itself cannot create them (``null-co``
and other filter or test drivers) and with a plain "not supported" otherwise, until
their drivers land (qcow2 first).  ``unmap=false`` is accepted but changes nothing:
zero areas of the source always become holes in the target.

The reply comes before the job's first events except when QEMU runs the job up to
its first wait inside the command: ``sync=none`` and empty sources are ready at once,
so for them the handler lets the job reach ``ready`` before it answers.
"""

from __future__ import annotations

from typing import Any, Final

from qjobd.block import BlockGraph, BlockNode, create_file
from qjobd.commands import CommandContext, handler
from qjobd.errors import QMPError
from qjobd.jobdrivers.mirror import MirrorDriver, MirrorOptions, setup_mirror
from qjobd.model.errors import ArgumentError

#: Formats drive-mirror can create and open.
SUPPORTED_FORMATS: Final = frozenset({"raw", "file"})
#: Drivers QEMU knows but cannot create images with (no bdrv_co_create_opts).
NOT_CREATABLE: Final = frozenset({
    "blkdebug", "blklogreplay", "blkreplay", "blkverify", "bochs", "cloop", "compress",
    "copy-before-write", "copy-on-read", "dmg", "ftp", "ftps", "http", "https",
    "null-aio", "null-co", "preallocate", "quorum", "replication", "snapshot-access",
    "throttle", "vvfat",
})
#: The first bytes of a qcow2 image, for format probing with mode=existing.
QCOW2_MAGIC: Final = b"QFI\xfb"


def root_node(graph: BlockGraph, name: str) -> BlockNode:
    """qmp_get_root_bs: the named node, which nothing but backends may use."""
    node = graph.lookup(name)
    if not graph.is_root_node(node):
        raise QMPError("Need a root block node")
    return node


def _value(member: Any, default: Any = None) -> Any:
    """An optional member's value (enum members give their string)."""
    if member is None:
        return default
    return getattr(member, "value", member)


async def _answer_after_start(job: Any, driver: MirrorDriver) -> None:
    """Let a mirror that QEMU would make ready inside the command get there first."""
    if driver.starts_ready:
        await job.settle()


def _mirror_options(context: CommandContext, arguments: Any, source: BlockNode,
                    target: BlockNode, sync: str, **extra: Any) -> MirrorOptions:
    """The options blockdev-mirror and drive-mirror share, with QEMU's defaults."""
    return MirrorOptions(
        source=source, target=target, sync=sync, job_id=arguments.job_id,
        replaces=arguments.replaces, speed=_value(arguments.speed, 0),
        granularity=_value(arguments.granularity, 0),
        buf_size=_value(arguments.buf_size, 0),
        on_source_error=_value(arguments.on_source_error, "report"),
        on_target_error=_value(arguments.on_target_error, "report"),
        copy_mode=_value(arguments.copy_mode, "background"),
        auto_finalize=_value(arguments.auto_finalize, True),
        auto_dismiss=_value(arguments.auto_dismiss, True),
        request_id=context.request_id,
        **extra,
    )


@handler("blockdev-mirror")
async def blockdev_mirror(context: CommandContext, arguments: Any) -> None:
    graph = context.daemon.block
    source = root_node(graph, arguments.device)
    target = graph.lookup(arguments.target)
    sync = _value(arguments.sync)
    options = _mirror_options(
        context, arguments, source, target, sync,
        filter_node_name=arguments.filter_node_name,
    )
    job = setup_mirror(graph, context.daemon.jobs, options)
    assert isinstance(job.driver, MirrorDriver)
    await _answer_after_start(job, job.driver)


def _known_driver(context: CommandContext, fmt: str) -> bool:
    """Whether QEMU has a driver of that name (a BlockdevDriver value)."""
    try:
        context.daemon.model.structure("BlockdevDriver", fmt)
    except ArgumentError:
        return False
    return True


def _check_format(context: CommandContext, fmt: str) -> None:
    """bdrv_img_create's format checks, in its order."""
    if fmt in SUPPORTED_FORMATS:
        return
    if not _known_driver(context, fmt):
        raise QMPError(f"Unknown file format '{fmt}'")
    if fmt in NOT_CREATABLE:
        raise QMPError(f"Format driver '{fmt}' does not support image creation")
    raise QMPError(f"Image format '{fmt}' is not supported by qjobd")


def _probe(path: str) -> str:
    """The format of an existing image: raw unless it is a qcow2 image."""
    try:
        with open(path, "rb") as image:
            magic = image.read(len(QCOW2_MAGIC))
    except OSError:
        return "raw"  # opening it reports the error in QEMU's words
    if magic == QCOW2_MAGIC:
        raise QMPError("Image format 'qcow2' is not supported by qjobd")
    return "raw"


def _target_options(path: str, fmt: str, node_name: str | None) -> dict[str, Any]:
    if fmt == "file":
        options: dict[str, Any] = {"driver": "file", "filename": path}
    else:
        options = {"driver": fmt, "file": {"driver": "file", "filename": path}}
    if node_name is not None:
        options["node-name"] = node_name
    return options


@handler("drive-mirror")
async def drive_mirror(context: CommandContext, arguments: Any) -> None:
    graph = context.daemon.block
    source = root_node(graph, arguments.device)
    # Checked early so that no image is created for a busy source.
    graph.check_op(source, "mirror-source")
    mode = _value(arguments.mode, "absolute-paths")
    fmt: str | None = arguments.format
    if fmt is None and mode != "existing":
        fmt = source.format_name
    sync = _value(arguments.sync)
    if sync == "top":
        sync = "full"  # no backing chains in qjobd
    size = source.length()
    if arguments.replaces is not None and arguments.node_name is None:
        raise QMPError("a node-name must be provided when replacing a named node of the "
                       "graph")
    path = arguments.target
    if mode != "existing":
        assert fmt is not None
        _check_format(context, fmt)
        if sync == "none":
            # The new image would need the source as its backing file.
            raise QMPError(f"Backing file not supported for file format '{fmt}'")
        create_file(path, size)
    elif fmt is None:
        fmt = _probe(path)
    elif fmt not in SUPPORTED_FORMATS:
        if not _known_driver(context, fmt):
            raise QMPError(f"Unknown driver '{fmt}'")
        raise QMPError(f"Image format '{fmt}' is not supported by qjobd")
    target = graph.open_implicit(_target_options(path, fmt, arguments.node_name))
    options = _mirror_options(context, arguments, source, target, sync,
                              implicit_target=True)
    try:
        job = setup_mirror(graph, context.daemon.jobs, options)
    except BaseException:
        graph.release_implicit(target)
        raise
    assert isinstance(job.driver, MirrorDriver)
    await _answer_after_start(job, job.driver)

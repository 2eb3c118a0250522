"""Handlers of schema/control.json: negotiation, version, command list, quit."""

from __future__ import annotations

from typing import Any

from qjobd import __version__
from qjobd.commands.arguments import value
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import CommandNotFound, QMPError


def version_info() -> dict[str, Any]:
    """qjobd's own version in QEMU's VersionInfo shape (the greeting carries it too)."""
    parts = [int(part) for part in __version__.split(".")[:3]]
    major, minor, micro = ([*parts, 0, 0, 0])[:3]
    return {
        "qemu": {"major": major, "minor": minor, "micro": micro},
        "package": f"qjobd {__version__}",
    }


@handler("qmp_capabilities")
async def qmp_capabilities(context: CommandContext, arguments: Any) -> None:
    session = context.session
    if session.negotiated:
        raise CommandNotFound("Capabilities negotiation is already complete, command ignored")
    enable = getattr(arguments, "enable", None) or []
    session.complete_negotiation(str(value(capability)) for capability in enable)


@handler("query-version")
async def query_version(context: CommandContext, arguments: Any) -> Any:
    return context.services.model.structure("VersionInfo", version_info())


@handler("query-commands")
async def query_commands(context: CommandContext, arguments: Any) -> list[Any]:
    command_info = context.services.model.py.CommandInfo
    return [command_info(name=name) for name in context.session.command_names()]


@handler("quit")
async def quit_(context: CommandContext, arguments: Any) -> None:
    context.services.request_exit()


#: The capability x-qjobd-progress-interval configures.
PROGRESS_CAPABILITY = "x-qjobd-progress"

#: The bounds of x-qjobd-progress-interval, in milliseconds.
PROGRESS_INTERVAL_RANGE = (10, 3_600_000)


@handler("x-qjobd-progress-interval")
async def x_qjobd_progress_interval(context: CommandContext, arguments: Any) -> None:
    session = context.session
    if PROGRESS_CAPABILITY not in session.capabilities:
        raise QMPError(f"Capability '{PROGRESS_CAPABILITY}' is not enabled")
    low, high = PROGRESS_INTERVAL_RANGE
    milliseconds = arguments.milliseconds
    if not low <= milliseconds <= high:
        raise QMPError(f"Parameter 'milliseconds' expects a value from {low} to {high}")
    session.progress_interval = milliseconds / 1000

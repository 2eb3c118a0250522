"""Dispatch: from a classified request to the reply, through the schema's model.

The :class:`Dispatcher` is what a connection needs from the command layer: the
command specs its session routes by, and :meth:`Dispatcher.execute`.  It imports
every handler module (so importing it registers all handlers) and refuses to exist
when the schema and the handlers disagree, which keeps the schema the single source
of truth for which commands there are.
"""

from __future__ import annotations

import logging
from typing import Any

from qjobd.commands import (  # noqa: F401  (imported to register their handlers)
    backup,
    block,
    blockjob,
    commit,
    control,
    create,
    external_snapshot,
    internal_snapshot,
    introspect,
    job,
    mirror,
    stream,
    transaction,
)
from qjobd.commands.context import CommandContext, Services
from qjobd.commands.registry import HANDLERS, Handler
from qjobd.errors import QJobdError, QMPError
from qjobd.model.errors import ArgumentError
from qjobd.protocol.session import Call, CommandSpec, Reply, Session
from qjobd.qapi.schema import Schema

__all__ = ["Dispatcher", "HandlerMismatch", "all_handlers"]

logger = logging.getLogger(__name__)


class HandlerMismatch(QJobdError):
    """The schema names a command without handler, or a handler has no command."""


def all_handlers() -> dict[str, Handler]:
    """Every registered handler by command name."""
    return dict(HANDLERS)


class Dispatcher:
    """Runs commands for every connection of one daemon.

    :param schema: the checked schema; its live commands (under ``defined``) must
        match the handlers exactly.
    :raise HandlerMismatch: they do not.
    """

    def __init__(self, schema: Schema, defined: frozenset[str], services: Services) -> None:
        commands = [c for c in schema.commands() if c.ifcond.evaluate(defined)]
        names = {command.name for command in commands}
        missing = sorted(names - HANDLERS.keys())
        orphans = sorted(HANDLERS.keys() - names)
        if missing or orphans:
            raise HandlerMismatch(
                "qjobd: schema and handlers disagree: "
                f"commands without handler {missing}, handlers without command {orphans}"
            )
        self.services = services
        # query-commands lists the most recently registered command first, as QEMU.
        self.command_specs = {
            command.name: CommandSpec(command.name, command.allow_oob, command.success_response)
            for command in reversed(commands)
        }

    async def execute(self, call: Call, session: Session, request_id: Any) -> Reply | None:
        """Run ``call``'s handler and turn the outcome into the reply to send.

        Argument errors and :class:`QMPError` become error replies with their own class
        and text.  Any other exception is a bug in qjobd: it is logged with its traceback
        and answered with a GenericError, and the session goes on.
        """
        model = self.services.model
        try:
            arguments = model.structure_args(call.command, call.arguments)
            context = CommandContext(self.services, session, request_id, call.command,
                                     call.arguments)
            result = await HANDLERS[call.command](context, arguments)
            value = model.unstructure_return(call.command, result)
        except QMPError as error:
            return session.error_for(call, error.error_class, error.desc)
        except ArgumentError as error:
            return session.error_for(call, "GenericError", str(error))
        except Exception as error:
            logger.exception("command %s failed unexpectedly", call.command)
            return session.error_for(call, "GenericError", f"internal error: {error!r}")
        return session.reply_for(call, value)

"""Command handlers and the table that maps QMP command names to them.

Each module here holds the handlers of one schema module and registers them with
:func:`handler`.  A handler is an ``async`` function taking the
:class:`CommandContext` and the command's arguments as the model structured them;
it returns the command's result (structured values, unstructured by the model) or
raises :class:`qjobd.errors.QMPError`.  The schema decides which commands exist: the
daemon refuses to start if the schema and this table disagree, and a test checks it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from qjobd.errors import QMPError
from qjobd.model.errors import ArgumentError
from qjobd.protocol.session import Call, Reply, Session

if TYPE_CHECKING:
    from qjobd.server.daemon import Daemon

__all__ = ["HANDLERS", "CommandContext", "Handler", "execute", "handler", "load_handlers"]

logger = logging.getLogger(__name__)


@attrs.define(slots=True)
class CommandContext:
    """What a handler may touch: the daemon's services and the calling session."""

    daemon: Daemon
    session: Session
    #: The ``id`` of the request being run, or None; recorded by jobs it starts.
    request_id: Any = None


Handler = Callable[[CommandContext, Any], Awaitable[Any]]

#: Command name -> handler, filled by the modules imported in load_handlers().
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine function as the handler of ``name``."""

    def register(function: Handler) -> Handler:
        if name in HANDLERS:
            raise RuntimeError(f"two handlers for command {name!r}")
        HANDLERS[name] = function
        return function

    return register


def load_handlers() -> dict[str, Handler]:
    """Import every handler module so that all handlers are registered."""
    from qjobd.commands import (  # noqa: F401
        backup,
        block,
        blockjob,
        control,
        introspect,
        job,
        mirror,
        transaction,
    )

    return HANDLERS


async def execute(call: Call, context: CommandContext) -> Reply | None:
    """Run ``call``'s handler and turn the outcome into the reply to send.

    Argument errors and :class:`QMPError` become error replies with their own class
    and text.  Any other exception is a bug in qjobd: it is logged with its traceback
    and answered with a GenericError, and the session goes on.
    """
    session = context.session
    model = context.daemon.model
    try:
        arguments = model.structure_args(call.command, call.arguments)
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

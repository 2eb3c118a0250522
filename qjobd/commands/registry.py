"""The table from QMP command names to handlers, filled by the ``@handler`` decorator.

A handler is an ``async`` function taking the :class:`CommandContext` and the
command's arguments as the model structured them (None for commands without any); it
returns the command's result (structured values, unstructured by the model) or
raises :class:`qjobd.errors.QMPError`.  Each module of ``commands/`` registers the
handlers of one schema module; :mod:`qjobd.commands.dispatch` imports them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from qjobd.commands.context import CommandContext

__all__ = ["HANDLERS", "Handler", "handler"]

Handler = Callable[[CommandContext, Any], Awaitable[Any]]

#: Command name -> handler, filled as the handler modules are imported.
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine function as the handler of ``name``."""

    def register(function: Handler) -> Handler:
        if name in HANDLERS:
            raise RuntimeError(f"two handlers for command {name!r}")
        HANDLERS[name] = function
        return function

    return register

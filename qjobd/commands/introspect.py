"""Handler of schema/introspect.json: query-qmp-schema."""

from __future__ import annotations

from typing import Any

from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler


@handler("query-qmp-schema")
async def query_qmp_schema(context: CommandContext, arguments: Any) -> list[Any]:
    introspection: list[Any] = context.services.introspection
    return introspection

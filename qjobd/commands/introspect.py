"""Handler of schema/introspect.json: query-qmp-schema."""

from __future__ import annotations

from typing import Any, Final

from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler

__all__ = ["CONSTANT_RESULTS", "query_qmp_schema"]

#: Commands whose handler only returns data fixed at start-up and touches nothing
#: else, so the encoded reply can be kept and reused (``ReplyCache``): the schema is
#: 40 KB of JSON that costs ~6 ms to unstructure and encode, every single time.
CONSTANT_RESULTS: Final = frozenset({"query-qmp-schema"})


@handler("query-qmp-schema")
async def query_qmp_schema(context: CommandContext, arguments: Any) -> list[Any]:
    introspection: list[Any] = context.services.introspection
    return introspection

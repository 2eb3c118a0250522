"""Fixtures for the job tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from helpers.engine import Engine


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    """An :class:`Engine` whose manager runs jobs in a nursery of the test's; jobs
    left are cancelled and the graph's nodes closed afterwards."""
    engine = Engine()
    async with trio.open_nursery() as nursery:
        engine.manager.attach(nursery)
        yield engine
        nursery.cancel_scope.cancel()
    engine.graph.close_all()

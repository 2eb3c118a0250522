"""Fixtures for the block-layer tests: real files, qemu-img as the oracle."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from qjobd.block import BlockGraph


@pytest.fixture
def graph() -> Iterator[BlockGraph]:
    """A graph with seeded random name digits; closed afterwards."""
    g = BlockGraph(rng=random.Random(1234))
    yield g
    g.close_all()

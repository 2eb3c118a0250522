"""Generated client packages shared by the generator's tests."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from helpers.genclient import import_client
from helpers.qemu_source import QSD_SCHEMA


@pytest.fixture(scope="session")
def codec(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The client of tests/clientgen/schemas/codec.json (every kind of type)."""
    schema = Path(__file__).parent / "schemas" / "codec.json"
    return import_client(schema, tmp_path_factory.mktemp("codec"), "codec_client")


@pytest.fixture(scope="session")
def qsd_client(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The client of qemu-storage-daemon's own schema (skips without QEMU's source)."""
    if not QSD_SCHEMA.is_file():
        pytest.skip(f"no QEMU schema at {QSD_SCHEMA}")
    return import_client(QSD_SCHEMA, tmp_path_factory.mktemp("qsd"), "qsd_schema_client")

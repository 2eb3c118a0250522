"""Generated clients as importable packages, for tests of qjobd-gen-client."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from qjobd.clientgen import generate, write_package

ROOT = Path(__file__).resolve().parent.parent.parent
BUNDLED_SCHEMA = ROOT / "schema" / "qjobd.json"


def write_client(schema: Path, directory: Path, package: str) -> Path:
    """Generate the client for ``schema`` as ``directory/package``; its path."""
    write_package(generate([str(schema)]), directory / package)
    return directory / package


def import_client(schema: Path, directory: Path, package: str) -> ModuleType:
    """Generate the client for ``schema`` as package ``package`` and import it
    (``package`` must be unique in the test session)."""
    write_client(schema, directory, package)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    return importlib.import_module(package)

"""Where the bundled QAPI schema lives, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundled_schema_path"]


def bundled_schema_path() -> Path:
    """The top file of the bundled schema.

    A wheel installs the schema as ``qjobd/schema/`` (package data); in a source
    checkout or an editable install it is the top-level ``schema/`` directory.
    """
    package = Path(__file__).resolve().parent
    for directory in (package / "schema", package.parent / "schema"):
        candidate = directory / "qjobd.json"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("qjobd's bundled schema (schema/qjobd.json) is missing")

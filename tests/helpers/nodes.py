"""blockdev-add options for image files, as dictionaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def file_opts(path: Path | str, **extra: Any) -> dict[str, Any]:
    """A ``file`` node on ``path`` (``extra``: node-name, read-only...)."""
    return {"driver": "file", "filename": str(path), **extra}


def raw_opts(name: str, path: Path | str, **extra: Any) -> dict[str, Any]:
    """A ``raw`` node ``name`` over an anonymous ``file`` node on ``path``."""
    return {"driver": "raw", "node-name": name, "file": file_opts(path), **extra}

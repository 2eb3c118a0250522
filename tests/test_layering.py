"""The pure layers never import trio (nor the layers above them).

``qapi``, ``protocol``, ``model``, ``jobs.fsm`` and ``block`` are plain synchronous code
so they can be tested without an event loop and reused by tools; only the edges
(``server``, ``jobs.manager``, ``jobdrivers``, ``cli``) touch trio.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "qjobd"

PURE = {
    "qapi": {"trio", "qjobd.server", "qjobd.commands", "qjobd.jobs", "qjobd.model",
             "qjobd.protocol", "qjobd.block"},
    "protocol": {"trio", "qjobd.server", "qjobd.commands", "qjobd.jobs"},
    "model": {"trio", "qjobd.server", "qjobd.commands", "qjobd.jobs", "qjobd.protocol"},
    "jobs/fsm.py": {"trio", "qjobd.server", "qjobd.commands"},
    "block": {"trio", "qjobd.server", "qjobd.commands", "qjobd.protocol"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(part: str) -> list[Path]:
    target = PACKAGE / part
    return [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("part", sorted(PURE))
def test_pure_layer_imports(part: str) -> None:
    forbidden = PURE[part]
    offenders = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _files(part)
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    ]
    assert offenders == []


def test_rule_sees_a_violation(tmp_path: Path) -> None:
    """Guard against a checker that passes vacuously."""
    sample = tmp_path / "x.py"
    sample.write_text("import trio\nfrom trio import lowlevel\n")
    assert _imports(sample) == {"trio"}

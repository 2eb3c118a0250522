"""The package's shape: layers import only downwards, and there are no import cycles.

Top to bottom::

    cli, __main__, qjob/          the programs: the daemon, the operator's CLI
    server/                       trio edge: listener, connections, event fan-out
    commands/                     handlers, dispatch
    jobdrivers/                   what each job type does
    jobs/                         life cycle, transactions, manager
    block/  model/  protocol/  clientgen/   block layer | schema runtime | QMP wire |
                                  client generator (side by side)
    qapi/  client/                schema front end | generated client (side by side)
    errors, ids, qdict, ...       shared leaves

A module may import its own package and anything on a lower row, never a row above
and never a sibling on its own row.  Imports count wherever they are written,
``if TYPE_CHECKING:`` blocks and function bodies included, because a cycle that
only type checking sees is still two concepts that cannot be understood apart.
The pure layers (``qapi``, ``protocol``, ``model``, ``jobs/fsm.py``,
``jobs/transaction.py``, ``block``) never import trio.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "qjobd"

#: Package -> row; higher rows may import lower ones.
ROWS = {
    "qjobd": 0, "qjobd.errors": 0, "qjobd.ids": 0, "qjobd.qdict": 0, "qjobd.qjson": 0,
    "qjobd.schema_path": 0, "qjobd.options": 0,
    "qjobd.qapi": 1, "qjobd.client": 1,
    "qjobd.block": 2, "qjobd.clientgen": 2, "qjobd.model": 2, "qjobd.protocol": 2,
    "qjobd.jobs": 3,
    "qjobd.jobdrivers": 4,
    "qjobd.commands": 5,
    "qjobd.server": 6,
    "qjobd.cli": 7, "qjobd.qjob": 7, "qjobd.__main__": 8,
}

#: Modules that must stay free of trio (plain synchronous code).
PURE = ("qjobd.qapi", "qjobd.clientgen", "qjobd.protocol", "qjobd.model", "qjobd.block",
        "qjobd.jobs.fsm", "qjobd.jobs.transaction", "qjobd.jobs.events",
        "qjobd.jobs.ratelimit", "qjobd.jobs.progress", "qjobd.jobs.filters",
        "qjobd.jobs.details")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports, resolved to qjobd modules where they are ones
    (``from pkg import sub`` names the submodule), or the top-level name otherwise."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
    return found


def row_of(module: str) -> tuple[str, int] | None:
    """The layer a module belongs to: the longest ROWS key that prefixes it."""
    best: tuple[str, int] | None = None
    for name, row in ROWS.items():
        if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > len(best[0])):
            best = (name, row)
    return best


def edges() -> Iterator[tuple[str, str]]:
    table = modules()
    known = set(table)
    for name, path in table.items():
        for target in imports(path, known):
            if target in known and target != name:
                yield name, target


def test_every_module_has_a_row() -> None:
    assert [name for name in modules() if row_of(name) is None] == []


def test_imports_go_downwards_only() -> None:
    offenders = []
    for source, target in edges():
        source_layer, source_row = row_of(source)  # type: ignore[misc]
        target_layer, target_row = row_of(target)  # type: ignore[misc]
        if source_layer == target_layer or target_row == 0:
            continue
        if target_row >= source_row:
            offenders.append(f"{source} imports {target}")
    assert offenders == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in edges():
        graph.setdefault(source, set()).add(target)
    assert find_cycle(graph) is None


def test_cycle_finder_sees_a_cycle() -> None:
    """Guard against a checker that passes vacuously."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("pure", PURE)
def test_pure_layers_never_import_trio(pure: str) -> None:
    table = modules()
    offenders = [
        f"{name} imports {target}"
        for name, path in table.items()
        if name == pure or name.startswith(pure + ".")
        for target in imports(path, set(table))
        if target == "trio" or target.startswith("trio.")
    ]
    assert offenders == []


def test_import_resolution_sees_type_checking_imports() -> None:
    """Imports under ``if TYPE_CHECKING:`` count (backup.py has one, to the
    transaction module), and ``from pkg import module`` resolves to the module."""
    table = modules()
    found = imports(PACKAGE / "jobdrivers" / "backup.py", set(table))
    assert "qjobd.jobs.transaction" in found
    assert "qjobd.jobdrivers.blockjob" in found

"""A command exists iff the schema defines it and a handler implements it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qjobd.commands.dispatch import all_handlers
from qjobd.qapi import Schema
from qjobd.schema_path import bundled_schema_path
from qjobd.server.daemon import DEFINED_SYMBOLS, Daemon
from qjobd.server.listener import StartupError


def test_bundled_schema_and_handlers_agree() -> None:
    schema = Schema(str(bundled_schema_path()))
    commands = {c.name for c in schema.commands() if c.ifcond.evaluate(DEFINED_SYMBOLS)}
    assert commands == set(all_handlers())


def _schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schema"
    shutil.copytree(bundled_schema_path().parent, target)
    return target


def test_command_without_handler_stops_the_daemon(tmp_path: Path) -> None:
    schema = _schema_copy(tmp_path)
    control = schema / "control.json"
    control.write_text(
        control.read_text() + "\n##\n# @x-no-handler:\n#\n# Nothing implements this.\n#\n"
        "# Since: 0.1\n##\n{ 'command': 'x-no-handler' }\n"
    )
    with pytest.raises(StartupError, match=r"commands without handler \['x-no-handler'\]"):
        Daemon(schema / "qjobd.json")


def test_handler_without_command_stops_the_daemon(tmp_path: Path) -> None:
    schema = _schema_copy(tmp_path)
    control = schema / "control.json"
    text = control.read_text()
    start = text.index("##\n# @quit:")
    end = text.index("}", text.index("{ 'command': 'quit'")) + 1
    control.write_text(text[:start] + text[end:])
    with pytest.raises(StartupError, match=r"handlers without command \['quit'\]"):
        Daemon(schema / "qjobd.json")

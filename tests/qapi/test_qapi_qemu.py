"""The front end against QEMU 7.2's own schemas and schema test suite.

QEMU's source tree is found via ``$QEMU_SRC`` (default
``/tmp/qemu-src/qemu-7.2.0``); the tests skip when it is absent.  QEMU files
are only read, never copied.

* Every ``tests/qapi-schema`` case with a non-empty ``.err`` must be
  rejected, at the same file, line (and column, for syntax errors) as QEMU
  reports.  Our wording differs, so only locations are compared.
* Cases with an empty ``.err`` must be accepted, and the model must match
  QEMU's expected ``.out`` dump of it (entities in visit order, members,
  branches, conditions, features, and the parsed doc comments).
* The real storage-daemon and full QEMU schemas are accepted, quickly, and
  introspection of the storage-daemon schema reproduces what a real
  qemu-storage-daemon 7.2 reports.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from helpers.qemu_source import FULL_SCHEMA, QAPI_CASES, QEMU_SRC, QSD_SCHEMA

from qjobd.qapi import QAPIError, QAPISourceError, Schema, Visitor
from qjobd.qapi.expr import IfAll, IfCond, IfExpr, IfNot
from qjobd.qapi.introspect import introspect
from qjobd.qapi.schema import (
    AlternateType,
    ArrayType,
    Command,
    EnumType,
    Event,
    Feature,
    ObjectType,
    Variants,
)
from qjobd.qapi.source import SourceInfo

CASES_DIR = QAPI_CASES

need_qemu = pytest.mark.skipif(not CASES_DIR.is_dir(), reason=f"no QEMU source at {QEMU_SRC}")


def _cases(bad: bool) -> list[object]:
    if not CASES_DIR.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no QEMU source at {QEMU_SRC}"))]
    cases: list[object] = []
    for path in sorted(CASES_DIR.glob("*.json")):
        err = path.with_suffix(".err")
        if err.exists() and bool(err.read_text()) == bad:
            cases.append(pytest.param(path, id=path.stem))
    return cases


_LOCATION = re.compile(r"^(\S+?):(\d+)(?::(\d+))?: \S")
_CONTEXT = re.compile(r"^(In file included from .*|\S+: In \S+ '.*'):$")


def _expected_location(err_text: str) -> tuple[str, int, int | None]:
    """The first ``file:line[:col]:`` of a QEMU ``.err`` text."""
    for line in err_text.splitlines():
        if _CONTEXT.match(line):
            continue
        match = _LOCATION.match(line)
        if match:
            col = int(match.group(3)) if match.group(3) else None
            return match.group(1), int(match.group(2)), col
    raise AssertionError(f"no location in {err_text!r}")


@pytest.mark.parametrize("path", _cases(bad=True))
def test_qemu_negative_case_is_rejected_at_same_place(path: Path) -> None:
    with pytest.raises(QAPIError) as excinfo:
        Schema(str(path))
    err = excinfo.value
    assert isinstance(err, QAPISourceError), str(err)
    expected = _expected_location(path.with_suffix(".err").read_text())
    got = (os.path.basename(err.info.fname), err.info.line, err.col)
    assert got == expected, str(err)


@pytest.mark.parametrize("path", _cases(bad=False))
def test_qemu_positive_case_is_accepted_and_matches_out(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QEMU's module names are relative to the directory it runs in.
    monkeypatch.chdir(path.parent)
    schema = Schema(path.name)
    expected = path.with_suffix(".out").read_text()
    assert _dump(schema) == expected


@need_qemu
def test_qemu_case_counts() -> None:
    bad = [p for p in _cases(bad=True) if not getattr(p, "marks", None)]
    good = [p for p in _cases(bad=False) if not getattr(p, "marks", None)]
    assert len(bad) >= 190
    assert len(good) >= 8


@need_qemu
def test_missing_schema_file() -> None:
    with pytest.raises(QAPIError, match="can't read schema file"):
        Schema(str(CASES_DIR / "missing-schema.json"))


# -- the real schemas ----------------------------------------------------------


@need_qemu
def test_storage_daemon_schema_is_accepted() -> None:
    schema = Schema(str(QSD_SCHEMA))
    assert schema.lookup_entity("query-block") is not None
    assert len(schema.commands()) > 50


@need_qemu
def test_full_qemu_schema_is_accepted_quickly() -> None:
    start = time.perf_counter()
    schema = Schema(str(FULL_SCHEMA))
    elapsed = time.perf_counter() - start
    assert len(schema.commands()) > 200
    assert elapsed < 2.0


#: A configuration like Debian bookworm's qemu-storage-daemon 7.2 build:
#: Linux host, SPICE and D-Bus display support compiled in (their char
#: devices are in the QSD schema), replication and FUSE exports, no libblkio.
#: Of all symbols the schema uses, only CONFIG_BLKIO (5 entries),
#: CONFIG_SPICE (4), CONFIG_DBUS_DISPLAY (2), CONFIG_REPLICATION (2),
#: CONFIG_SPICE_PROTOCOL (2) and CONFIG_FUSE (1) change the entry count
#: (483 with none defined); the others only change members and values.
QSD_DEFINED = frozenset(
    {
        "CONFIG_POSIX",
        "CONFIG_LINUX",
        "CONFIG_LINUX_AIO",
        "CONFIG_LINUX_IO_URING",
        "CONFIG_REPLICATION",
        "CONFIG_VHOST_USER_BLK_SERVER",
        "CONFIG_VDUSE_BLK_EXPORT",
        "CONFIG_FUSE",
        "CONFIG_SPICE",
        "CONFIG_SPICE_PROTOCOL",
        "CONFIG_DBUS_DISPLAY",
        "HAVE_HOST_BLOCK_DEVICE",
    }
)


@need_qemu
def test_storage_daemon_introspection_matches_real_qsd() -> None:
    info = introspect(Schema(str(QSD_SCHEMA)), QSD_DEFINED)
    assert len(info) == 494
    assert info[:3] == [
        {"name": "query-block", "ret-type": "[1]", "meta-type": "command", "arg-type": "0"},
        {"name": "query-blockstats", "ret-type": "[3]", "meta-type": "command", "arg-type": "2"},
        {"name": "query-block-jobs", "ret-type": "[4]", "meta-type": "command", "arg-type": "0"},
    ]
    assert {"name": "JOB_STATUS_CHANGE", "meta-type": "event", "arg-type": "50"} in info
    assert {
        "name": "job-pause",
        "ret-type": "0",
        "meta-type": "command",
        "arg-type": "51",
    } in info


@need_qemu
def test_storage_daemon_introspection_is_self_consistent() -> None:
    info = introspect(Schema(str(QSD_SCHEMA)), QSD_DEFINED)
    names = [entry["name"] for entry in info]
    assert len(names) == len(set(names))
    defined = set(names)

    def check_ref(ref: object) -> None:
        assert isinstance(ref, str)
        assert ref in defined, ref

    for entry in info:
        meta = entry["meta-type"]
        if meta in ("command", "event"):
            check_ref(entry["arg-type"])
        if meta == "command":
            check_ref(entry["ret-type"])
        if meta == "array":
            check_ref(entry["element-type"])
        if meta in ("object", "alternate"):
            members = entry["members"]
            assert isinstance(members, list)
            for m in members:
                check_ref(m["type"])
        for v in entry.get("variants") or []:
            assert isinstance(v, dict)
            check_ref(v["type"])
    # Every entry after the commands and events is reachable from them.
    assert [e["meta-type"] for e in info[:2]] == ["command", "command"]


@need_qemu
def test_storage_daemon_introspection_condition_counts() -> None:
    schema = Schema(str(QSD_SCHEMA))
    assert len(introspect(schema)) == 483
    assert len(introspect(schema, QSD_DEFINED | {"CONFIG_BLKIO"})) == 499


# -- a dump in the format of QEMU's expected .out files --------------------------


def _cond(ifcond: IfCond) -> str:
    def render(expr: IfExpr) -> str:
        if isinstance(expr, str):
            return repr(expr)
        if isinstance(expr, IfNot):
            return f"{{'not': {render(expr.operand)}}}"
        key = "all" if isinstance(expr, IfAll) else "any"
        return f"{{'{key}': [{', '.join(render(op) for op in expr.operands)}]}}"

    assert ifcond.expr is not None
    return ifcond.expr if isinstance(ifcond.expr, str) else render(ifcond.expr)


class _OutDumper(Visitor):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def _if(self, ifcond: IfCond, indent: int = 4) -> None:
        if ifcond.is_present():
            self.lines.append(" " * indent + "if " + _cond(ifcond))

    def _features(self, features: list[Feature], indent: int = 4) -> None:
        for f in features:
            self.lines.append(" " * indent + "feature " + f.name)
            self._if(f.ifcond, indent + 4)

    def _variants(self, variants: Variants | None) -> None:
        if variants is not None:
            self.lines.append("    tag " + variants.tag_member.name)
            for v in variants.variants:
                self.lines.append(f"    case {v.name}: {v.type.name}")
                self._if(v.ifcond, 8)

    def visit_module(self, name: str) -> None:
        self.lines.append("module " + name)

    def visit_include(self, name: str, info: SourceInfo) -> None:
        self.lines.append("include " + name)

    def visit_enum_type(self, typ: EnumType) -> None:
        self.lines.append("enum " + typ.name)
        if typ.prefix:
            self.lines.append("    prefix " + typ.prefix)
        for m in typ.members:
            self.lines.append("    member " + m.name)
            self._if(m.ifcond, 8)
            self._features(m.features, 8)
        self._if(typ.ifcond)
        self._features(typ.features)

    def visit_array_type(self, typ: ArrayType) -> None:
        if typ.info is not None:
            self.lines.append(f"array {typ.name} {typ.element_type.name}")
            self._if(typ.ifcond)

    def visit_object_type(self, typ: ObjectType) -> None:
        self.lines.append("object " + typ.name)
        if typ.base is not None:
            self.lines.append("    base " + typ.base.name)
        for m in typ.local_members:
            self.lines.append(f"    member {m.name}: {m.type.name} optional={m.optional}")
            self._if(m.ifcond, 8)
            self._features(m.features, 8)
        self._variants(typ.variants)
        self._if(typ.ifcond)
        self._features(typ.features)

    def visit_alternate_type(self, typ: AlternateType) -> None:
        self.lines.append("alternate " + typ.name)
        self._variants(typ.variants)
        self._if(typ.ifcond)
        self._features(typ.features)

    def visit_command(self, command: Command) -> None:
        arg = command.arg_type.name if command.arg_type else None
        ret = command.ret_type.name if command.ret_type else None
        self.lines.append(f"command {command.name} {arg} -> {ret}")
        self.lines.append(
            f"    gen={command.gen} success_response={command.success_response} "
            f"boxed={command.boxed} oob={command.allow_oob} "
            f"preconfig={command.allow_preconfig}"
            + (" coroutine=True" if command.coroutine else "")
        )
        self._if(command.ifcond)
        self._features(command.features)

    def visit_event(self, event: Event) -> None:
        arg = event.arg_type.name if event.arg_type else None
        self.lines.append(f"event {event.name} {arg}")
        self.lines.append(f"    boxed={event.boxed}")
        self._if(event.ifcond)
        self._features(event.features)


def _dump(schema: Schema) -> str:
    dumper = _OutDumper()
    schema.visit(dumper)
    lines = dumper.lines
    for doc in schema.docs:
        lines.append(f"doc symbol={doc.symbol}" if doc.symbol else "doc freeform")
        lines.append(f"    body=\n{doc.body.text}")
        lines += [f"    arg={name}\n{sec.text}" for name, sec in doc.args.items()]
        lines += [f"    feature={name}\n{sec.text}" for name, sec in doc.features.items()]
        lines += [f"    section={sec.name}\n{sec.text}" for sec in doc.sections]
    return "\n".join(lines) + "\n"

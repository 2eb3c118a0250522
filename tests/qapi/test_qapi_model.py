"""The public API of the schema front end: model, visitor, conditions,
locations, parser details, introspection and the text dump."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qjobd.qapi import QAPIError, QAPIParseError, QAPISemError, Schema, Visitor
from qjobd.qapi.expr import IfAll, IfAny, IfCond, IfNot
from qjobd.qapi.introspect import IntrospectionVisitor, introspect
from qjobd.qapi.parser import SchemaParser
from qjobd.qapi.schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    Command,
    Entity,
    EnumType,
    Event,
    ObjectType,
    Type,
)
from qjobd.qapi.source import SourceInfo
from qjobd.qapi.textdump import dump_text

GOOD = Path(__file__).resolve().parent / "schemas" / "good"


@pytest.fixture(scope="module")
def basics() -> Schema:
    return Schema(str(GOOD / "basics.json"))


def _schema(tmp_path: Path, text: str, name: str = "s.json") -> Schema:
    path = tmp_path / name
    path.write_text(text)
    return Schema(str(path))


# -- the model -----------------------------------------------------------------


def test_builtins_come_first(basics: Schema) -> None:
    entities = basics.entities()
    assert entities[0].name == "str"
    assert isinstance(entities[0], BuiltinType)
    assert entities[1].name == "strList"
    assert [e.module for e in entities[:32]] == ["./builtin"] * 32
    assert entities[32].module == "basics.json"
    assert basics.modules[0].name == "./builtin"


def test_lookup(basics: Schema) -> None:
    assert isinstance(basics.lookup_type("JobInfo"), ObjectType)
    assert isinstance(basics.lookup_entity("job-pause"), Command)
    assert basics.lookup_type("job-pause") is None
    assert basics.lookup_entity("NoSuchThing") is None
    builtin = basics.lookup_type("uint64")
    assert isinstance(builtin, BuiltinType)
    assert builtin.json_type() == "int"
    assert builtin.is_implicit()


def test_enum(basics: Schema) -> None:
    typ = basics.lookup_type("JobType")
    assert isinstance(typ, EnumType)
    assert typ.member_names() == ["backup", "mirror", "stream", "commit", "io-uring-copy"]
    assert typ.prefix == "QJOB_TYPE"
    assert typ.json_type() == "string"
    assert str(typ.members[4].ifcond) == "CONFIG_LINUX_IO_URING"
    assert [f.name for f in typ.members[3].features] == ["unstable"]
    assert typ.members[3].features[0].is_special()
    qtype = basics.lookup_type("QType")
    assert isinstance(qtype, EnumType)
    assert qtype.is_implicit()


def test_struct_members_base_first(basics: Schema) -> None:
    typ = basics.lookup_type("JobInfo")
    assert isinstance(typ, ObjectType)
    assert typ.meta == "struct"
    assert typ.base is basics.lookup_type("JobBase")
    assert [m.name for m in typ.members][:4] == ["id", "type", "status", "current-progress"]
    assert typ.local_members[0].name == "status"
    by_name = {m.name: m for m in typ.members}
    assert by_name["error"].optional
    assert not by_name["id"].optional
    node_names = by_name["node-names"].type
    assert isinstance(node_names, ArrayType)
    assert node_names.name == "strList"
    assert node_names.element_type is basics.lookup_type("str")
    assert by_name["speed"].features[0].name == "deprecated"
    assert by_name["uring-depth"].ifcond.evaluate({"CONFIG_LINUX_IO_URING"})
    assert not by_name["uring-depth"].ifcond.evaluate(set())
    assert not typ.is_empty()
    assert not typ.is_implicit()
    assert typ.json_type() == "object"


def test_union(basics: Schema) -> None:
    typ = basics.lookup_type("JobArgs")
    assert isinstance(typ, ObjectType)
    assert typ.meta == "union"
    assert typ.base is not None
    assert typ.base.name == "q_obj_JobArgs-base"
    assert typ.base.is_implicit()
    assert [m.name for m in typ.members] == ["type", "id"]
    variants = typ.variants
    assert variants is not None
    assert variants.tag_member.name == "type"
    cases = {v.name: v for v in variants.variants}
    assert list(cases) == ["backup", "mirror", "stream", "commit", "io-uring-copy"]
    assert cases["backup"].type.name == "BackupArgs"
    assert str(cases["mirror"].ifcond) == "CONFIG_MIRROR"
    # Values without a branch get the empty object, under the value's condition.
    assert cases["stream"].type is basics.the_empty_object_type
    assert str(cases["io-uring-copy"].ifcond) == "CONFIG_LINUX_IO_URING"
    assert basics.the_empty_object_type.is_empty()


def test_alternate(basics: Schema) -> None:
    typ = basics.lookup_type("NodeOrName")
    assert isinstance(typ, AlternateType)
    assert typ.json_type() == "value"
    assert typ.variants.tag_member.type.name == "QType"
    assert [(v.name, v.type.name) for v in typ.variants.variants] == [
        ("definition", "BackupArgs"),
        ("reference", "str"),
        ("none", "null"),
    ]


def test_commands_and_events(basics: Schema) -> None:
    commands = {c.name: c for c in basics.commands()}
    assert list(commands) == [
        "job-create",
        "query-jobs",
        "job-pause",
        "job-finalize",
        "x-debug-jobs",
        "job-set-target",
    ]
    create = commands["job-create"]
    assert create.boxed
    assert create.arg_type is basics.lookup_type("JobArgs")
    assert create.ret_type is basics.lookup_type("JobInfo")
    pause = commands["job-pause"]
    assert pause.allow_oob
    assert pause.arg_type is not None
    assert pause.arg_type.name == "q_obj_job-pause-arg"
    assert pause.arg_type.is_implicit()
    assert pause.ret_type is None
    assert [m.name for m in pause.arg_type.members] == ["id", "force"]
    assert commands["query-jobs"].arg_type is None
    assert commands["query-jobs"].allow_preconfig
    finalize = commands["job-finalize"]
    assert finalize.coroutine
    assert [(f.name, str(f.ifcond)) for f in finalize.features] == [
        ("unstable", ""),
        ("x-fast", "CONFIG_FAST"),
    ]
    debug = commands["x-debug-jobs"]
    assert not debug.gen
    assert not debug.success_response
    assert str(debug.ifcond) == "CONFIG_DEBUG and not CONFIG_RELEASE"
    assert debug.ifcond.evaluate({"CONFIG_DEBUG"})
    assert not debug.ifcond.evaluate({"CONFIG_DEBUG", "CONFIG_RELEASE"})

    events = {e.name: e for e in basics.events()}
    assert list(events) == ["JOB_STATUS_CHANGE", "JOB_CREATED", "JOBS_IDLE"]
    assert events["JOB_CREATED"].boxed
    assert events["JOBS_IDLE"].arg_type is None
    changed = events["JOB_STATUS_CHANGE"].arg_type
    assert changed is not None
    assert changed.name == "q_obj_JOB_STATUS_CHANGE-arg"


def test_entity_info_and_meta(basics: Schema) -> None:
    job_info = basics.lookup_entity("JobInfo")
    assert job_info is not None
    assert job_info.info is not None
    assert job_info.info.line == 18
    assert job_info.meta == "struct"
    assert str(job_info.info).endswith("basics.json: In struct 'JobInfo':\n" + job_info.info.loc())
    metas = {type(e).__name__: e.meta for e in basics.entities()}
    assert metas["BuiltinType"] == "built-in"
    assert metas["ArrayType"] == "array"
    assert metas["Command"] == "command"
    assert metas["Event"] == "event"


class _Recorder(Visitor):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.begun: Schema | None = None
        self.ended = False

    def visit_begin(self, schema: Schema) -> None:
        self.begun = schema

    def visit_end(self) -> None:
        self.ended = True

    def visit_module(self, name: str) -> None:
        self.calls.append(f"module {name}")

    def visit_needed(self, entity: Entity) -> bool:
        return not entity.is_implicit()

    def visit_include(self, name: str, info: SourceInfo) -> None:
        self.calls.append(f"include {name}")

    def visit_builtin_type(self, name: str, info: SourceInfo | None, json_type: str) -> None:
        self.calls.append(f"builtin {name}")

    def visit_enum_type(self, typ: EnumType) -> None:
        self.calls.append(f"enum {typ.name}")

    def visit_array_type(self, typ: ArrayType) -> None:
        self.calls.append(f"array {typ.name}")

    def visit_object_type(self, typ: ObjectType) -> None:
        self.calls.append(f"object {typ.name}")

    def visit_alternate_type(self, typ: AlternateType) -> None:
        self.calls.append(f"alternate {typ.name}")

    def visit_command(self, command: Command) -> None:
        self.calls.append(f"command {command.name}")

    def visit_event(self, event: Event) -> None:
        self.calls.append(f"event {event.name}")


def test_visitor_module_order() -> None:
    schema = Schema(str(GOOD / "include-once.json"))
    recorder = _Recorder()
    schema.visit(recorder)
    assert recorder.begun is schema
    assert recorder.ended
    assert recorder.calls == [
        "module ./builtin",
        "module include-once.json",
        "include include/common.json",
        "include include/jobs.json",
        "command query-nodes",
        "module include/common.json",
        "object NodeInfo",
        "module include/jobs.json",
        "include include/common.json",
        "command query-job-nodes",
    ]


def test_entities_follow_visit_order(basics: Schema) -> None:
    class All(Visitor):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def visit_needed(self, entity: Entity) -> bool:
            self.seen.append(entity.name)
            return False

    visitor = All()
    basics.visit(visitor)
    assert visitor.seen == [e.name for e in basics.entities()]
    assert all(isinstance(t, Type) for t in basics.types())


def test_pragma_exceptions() -> None:
    schema = Schema(str(GOOD / "pragma-exceptions.json"))
    assert schema.pragma.command_name_exceptions == ["query_legacy"]
    legacy = schema.lookup_entity("query_legacy")
    assert isinstance(legacy, Command)
    assert legacy.ret_type is not None
    assert legacy.ret_type.name == "strList"


def test_docs_are_attached() -> None:
    schema = Schema(str(GOOD / "docs.json"))
    pause = schema.lookup_entity("job-pause")
    assert pause is not None
    doc = pause.doc
    assert doc is not None
    assert doc.symbol == "job-pause"
    assert doc.body.text == "Pause a running job."
    assert doc.args["id"].text == "the job's identifier; the text may\ncontinue on indented lines"
    assert doc.args["force"].text == "pause even if the job is about to complete"
    assert doc.features["unstable"].text == "the command may change"
    assert [s.name for s in doc.sections] == ["Returns", "Since", "Example"]
    since = doc.section("Since")
    assert since is not None
    assert since.text == "0.1"
    assert doc.args["id"].member is not None
    freeform = schema.docs[0]
    assert freeform.symbol is None
    assert freeform.body.text == "= Jobs\n\nFree-form text under a heading."
    assert len(schema.docs) == 4


# -- conditions ----------------------------------------------------------------


def test_ifcond() -> None:
    absent = IfCond()
    assert not absent.is_present()
    assert absent.evaluate(set())
    assert str(absent) == ""
    cond = IfCond(IfAll(("A", IfAny(("B", IfNot("C"))))))
    assert cond.is_present()
    assert str(cond) == "A and (B or not C)"
    assert cond.to_c() == "defined(A) && (defined(B) || !defined(C))"
    assert cond.to_json() == {"all": ["A", {"any": ["B", {"not": "C"}]}]}
    assert cond.evaluate({"A"})
    assert cond.evaluate({"A", "B", "C"})
    assert not cond.evaluate({"A", "C"})
    assert not cond.evaluate({"B"})
    assert cond == IfCond(IfAll(("A", IfAny(("B", IfNot("C"))))))
    assert cond != IfCond("A")


def test_array_follows_element_condition(tmp_path: Path) -> None:
    schema = _schema(
        tmp_path,
        "{ 'struct': 'Foo', 'data': {}, 'if': 'CONFIG_FOO' }\n"
        "{ 'command': 'get-foos', 'returns': ['Foo'], 'if': 'CONFIG_FOO' }\n",
    )
    array = schema.lookup_type("FooList")
    assert isinstance(array, ArrayType)
    assert str(array.ifcond) == "CONFIG_FOO"


# -- locations and errors --------------------------------------------------------


def test_source_info_rendering() -> None:
    top = SourceInfo("top.json", 3)
    mid = SourceInfo("sub/mid.json", 7, top)
    info = SourceInfo("sub/leaf.json", 42, mid)
    assert info.loc() == "sub/leaf.json:42"
    assert str(info) == (
        "In file included from top.json:3:\nIn file included from sub/mid.json:7:\nsub/leaf.json:42"
    )
    info.set_defn("struct", "Foo")
    assert str(info).endswith("sub/leaf.json: In struct 'Foo':\nsub/leaf.json:42")
    assert info.pragma is top.pragma
    err = QAPISemError(info, "something is wrong")
    assert str(err).endswith("sub/leaf.json:42: something is wrong")
    assert err.location() == "sub/leaf.json:42"
    assert str(QAPIParseError(SourceInfo("a.json", 2), "bad", 5)) == "a.json:2:5: bad"


def test_column_counts_tabs(tmp_path: Path) -> None:
    path = tmp_path / "tabs.json"
    path.write_text("{ 'enum': 'Foo',\n\t'data': [ 'a' ] ; }\n")
    with pytest.raises(QAPIParseError) as excinfo:
        SchemaParser(str(path))
    assert excinfo.value.info.line == 2
    assert excinfo.value.col == 25


def test_unreadable_schema(tmp_path: Path) -> None:
    with pytest.raises(QAPIError, match="can't read schema file"):
        Schema(str(tmp_path / "absent.json"))
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b"# caf\xe9\n")
    with pytest.raises(QAPIError, match="UTF-8"):
        Schema(str(bad))


def test_string_escapes(tmp_path: Path) -> None:
    schema = _schema(tmp_path, "{ 'enum': 'Foo', 'data': [ 'a' ], 'prefix': 'X\\\\Y' }\n")
    foo = schema.lookup_type("Foo")
    assert isinstance(foo, EnumType)
    assert foo.prefix == "X\\Y"


def test_include_paths_are_relative_to_includer(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.json").write_text("{ 'include': '../c.json' }\n")
    (tmp_path / "c.json").write_text("{ 'struct': 'Cee', 'data': {} }\n")
    schema = _schema(tmp_path, "{ 'include': 'a/b.json' }\n", "top.json")
    cee = schema.lookup_entity("Cee")
    assert cee is not None
    assert cee.module == "c.json"


# -- parser robustness -------------------------------------------------------------

_printable = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="'"))


@given(_printable)
def test_strings_round_trip(value: str) -> None:
    encoded = value.replace("\\", "\\\\")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.json"
        path.write_text(f"{{ 'enum': 'Foo', 'data': [ 'a' ], 'prefix': '{encoded}' }}\n")
        parser = SchemaParser(str(path))
    assert parser.exprs[0].expr["prefix"] == value


# Fragments of schema text, valid and invalid, glued at random.
_WORDS = r"""
{ } [ ] : , # true 'struct' 'enum' 'union' 'alternate' 'command' 'event' 'data' 'base'
'discriminator' 'type' 'Foo' 'foo' '*foo' 'int' 'str' 'if' 'A' 'features' 'boxed' 'returns'
'include' 'pragma' 'x.json' '' '\\' '\q' '
"""
_FRAGMENTS = [*_WORDS.split(), "\n", " ", "\t", "##\n", "# @x:\n"]
_tokens = st.sampled_from(_FRAGMENTS)


@settings(max_examples=300, deadline=None)
@given(st.lists(_tokens, max_size=40))
def test_arbitrary_input_only_raises_qapi_errors(tokens: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.json"
        path.write_text("".join(tokens))
        try:
            Schema(str(path))
        except QAPIError:
            pass


# -- introspection -------------------------------------------------------------


def test_introspection_shape(tmp_path: Path) -> None:
    schema = _schema(
        tmp_path,
        """
{ 'enum': 'Mode', 'data': [ 'fast', { 'name': 'slow', 'features': [ 'deprecated' ] },
                            { 'name': 'odd', 'if': 'CONFIG_ODD' } ] }
{ 'struct': 'Opts', 'data': { 'mode': 'Mode', '*count': 'uint8', 'sizes': ['size'],
                              '*old': { 'type': 'str', 'features': [ 'deprecated' ] } } }
{ 'alternate': 'OptsOrName', 'data': { 'o': 'Opts', 'n': 'str' } }
{ 'command': 'run', 'data': { 'opts': 'OptsOrName' }, 'returns': 'Opts',
  'allow-oob': true, 'features': [ 'unstable' ] }
{ 'command': 'noop' }
{ 'command': 'odd', 'if': 'CONFIG_ODD' }
{ 'event': 'DONE', 'data': { 'mode': 'Mode' } }
""",
    )
    # Numbers follow first use: commands and events first, then the types
    # they use, breadth first.  uint8 and size collapse into int.
    assert introspect(schema) == [
        {
            "name": "run",
            "meta-type": "command",
            "arg-type": "0",
            "ret-type": "1",
            "allow-oob": True,
            "features": ["unstable"],
        },
        {"name": "noop", "meta-type": "command", "arg-type": "2", "ret-type": "2"},
        {"name": "DONE", "meta-type": "event", "arg-type": "3"},
        {"name": "0", "meta-type": "object", "members": [{"name": "opts", "type": "4"}]},
        {
            "name": "1",
            "meta-type": "object",
            "members": [
                {"name": "mode", "type": "5"},
                {"name": "count", "type": "int", "default": None},
                {"name": "sizes", "type": "[int]"},
                {"name": "old", "type": "str", "default": None, "features": ["deprecated"]},
            ],
        },
        {"name": "2", "meta-type": "object", "members": []},
        {"name": "3", "meta-type": "object", "members": [{"name": "mode", "type": "5"}]},
        {"name": "4", "meta-type": "alternate", "members": [{"type": "1"}, {"type": "str"}]},
        {
            "name": "5",
            "meta-type": "enum",
            "members": [{"name": "fast"}, {"name": "slow", "features": ["deprecated"]}],
            "values": ["fast", "slow"],
        },
        {"name": "int", "meta-type": "builtin", "json-type": "int"},
        {"name": "[int]", "meta-type": "array", "element-type": "int"},
        {"name": "str", "meta-type": "builtin", "json-type": "string"},
    ]
    # Defining CONFIG_ODD adds the command and the enum value without
    # renumbering anything.
    with_odd = introspect(schema, {"CONFIG_ODD"})
    assert {"name": "odd", "meta-type": "command", "arg-type": "2", "ret-type": "2"} in with_odd
    mode = next(e for e in with_odd if e["name"] == "5")
    assert mode["values"] == ["fast", "slow", "odd"]


def test_introspection_unmasked(basics: Schema) -> None:
    visitor = IntrospectionVisitor({"CONFIG_MIRROR"}, unmask=True)
    basics.visit(visitor)
    names = [e["name"] for e in visitor.result]
    assert "JobArgs" in names
    assert "q_empty" in names
    assert "x-debug-jobs" not in names
    job_args = next(e for e in visitor.result if e["name"] == "JobArgs")
    assert job_args["tag"] == "type"
    assert job_args["variants"] == [
        {"case": "backup", "type": "BackupArgs"},
        {"case": "mirror", "type": "MirrorArgs"},
        {"case": "stream", "type": "q_empty"},
        {"case": "commit", "type": "q_empty"},
    ]
    # Unused types are not reported.
    assert "JobStatusList" not in names


# -- text dump -----------------------------------------------------------------


def test_text_dump() -> None:
    text = dump_text(Schema(str(GOOD / "docs.json")), title="Jobs")
    assert text.startswith("# Jobs\n")
    assert "## Commands" in text
    assert "### job-pause" in text
    assert "- `id`: `str` — the job's identifier; the text may continue on indented lines" in text
    assert "- `force`: `bool`, optional — pause even if the job is about to complete" in text
    assert "**Returns:** `JobStatusInfo` — the job's new status" in text
    assert "- `unstable`: the command may change" in text
    assert "### JobStatus (enum)" in text
    assert "- `created`: the job exists but has not started" in text
    assert "*Since: 0.1*" in text
    assert "q_obj" not in text


def test_text_dump_of_basics(basics: Schema) -> None:
    text = dump_text(basics)
    assert "### JobArgs (union)" in text
    assert "- `mirror` (if CONFIG_MIRROR): `MirrorArgs`" in text
    assert "- `stream`: no additional members" in text
    assert "**Arguments:** the members of `JobArgs` (boxed)" in text
    assert "- `offsets`: array of `int32`" in text
    assert "**Available if:** CONFIG_DEBUG and not CONFIG_RELEASE" in text

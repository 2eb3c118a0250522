"""The QMP session rules, without sockets: every error string QEMU's monitor sends."""

from __future__ import annotations

from typing import Any

import pytest

from qjobd.protocol.session import Call, CommandSpec, Reply, Session

COMMANDS = {
    name: CommandSpec(name)
    for name in ("qmp_capabilities", "query-jobs", "query-version", "quit")
}
COMMANDS["oob-ok"] = CommandSpec("oob-ok", allow_oob=True)
COMMANDS["silent"] = CommandSpec("silent", success_response=False)


def session(negotiated: bool = True, oob: bool = False) -> Session:
    result = Session(COMMANDS, {"version": {}, "capabilities": ["oob"]})
    if negotiated:
        result.complete_negotiation(["oob"] if oob else [])
    return result


def steps(s: Session, data: bytes) -> list[Call | Reply]:
    return [s.classify(value) for value in s.receive_data(data)]


def texts(s: Session, data: bytes) -> list[str]:
    out = []
    for step in steps(s, data):
        assert isinstance(step, Reply), step
        out.append(step.text)
    return out


def error(cls: str, desc: str, request_id: str | None = None) -> str:
    prefix = f'{{"id": {request_id}, ' if request_id is not None else "{"
    return f'{prefix}"error": {{"class": "{cls}", "desc": "{desc}"}}}}'


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"garbage", error("GenericError", "JSON parse error, invalid keyword 'garbage'")),
        (b"[]", error("GenericError", "QMP input must be a JSON object")),
        (b'"str"', error("GenericError", "QMP input must be a JSON object")),
        (b"7", error("GenericError", "QMP input must be a JSON object")),
        (b'{"arguments": {}}', error("GenericError", "QMP input lacks member 'execute'")),
        (b'{"execute": 1}', error("GenericError", "QMP input member 'execute' must be a string")),
        (b'{"execute": "query-jobs", "arguments": []}',
         error("GenericError", "QMP input member 'arguments' must be an object")),
        (b'{"execute": "query-jobs", "foo": 1}',
         error("GenericError", "QMP input member 'foo' is unexpected")),
        (b'{"execute": "nosuch"}',
         error("CommandNotFound", "The command nosuch has not been found")),
        (b'{"execute": "nosuch", "id": "abc"}',
         error("CommandNotFound", "The command nosuch has not been found", '"abc"')),
        (b'{"exec-oob": "query-jobs", "id": 1}',
         error("GenericError", "The command query-jobs does not support OOB", "1")),
        (b'{"execute": "query-jobs", "exec-oob": "query-jobs"}',
         error("GenericError", "QMP input member 'execute' clashes with 'exec-oob'")),
        (b'{"exec-oob": 5}', error("GenericError", "QMP input member 'exec-oob' must be a string")),
    ],
)
def test_request_errors_with_oob_enabled(data: bytes, expected: str) -> None:
    assert texts(session(oob=True), data + b"\n") == [expected]


def test_exec_oob_is_unexpected_without_the_capability() -> None:
    assert texts(session(oob=False), b'{"exec-oob": "query-jobs"}') == [
        error("GenericError", "QMP input member 'exec-oob' is unexpected")
    ]


def test_oob_command_becomes_an_oob_call() -> None:
    (step,) = steps(session(oob=True), b'{"exec-oob": "oob-ok", "id": 3}')
    assert step == Call("oob-ok", {}, 3, True)


@pytest.mark.parametrize(
    "data",
    [b'{"execute": "query-version"}', b'{"execute": "nosuch"}', b'{"execute": "quit"}'],
)
def test_before_negotiation_every_other_command_is_refused(data: bytes) -> None:
    assert texts(session(negotiated=False), data) == [
        error("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'")
    ]


def test_before_negotiation_other_errors_keep_their_text() -> None:
    assert texts(session(negotiated=False), b"[]") == [
        error("GenericError", "QMP input must be a JSON object")
    ]


def test_negotiation_changes_how_the_next_request_is_treated() -> None:
    s = session(negotiated=False)
    first, second = s.receive_data(b'{"execute": "qmp_capabilities"}{"execute": "query-jobs"}')
    negotiation = s.classify(first)
    assert isinstance(negotiation, Call)
    assert negotiation.command == "qmp_capabilities"
    s.complete_negotiation([])
    call = s.classify(second)
    assert isinstance(call, Call)
    assert call.command == "query-jobs"


@pytest.mark.parametrize(
    ("request_id", "encoded"),
    [(7, "7"), ("x", '"x"'), ({"a": [1, "x"]}, '{"a": [1, "x"]}'), (None, "null"),
     ([True, 1.5], "[true, 1.5]")],
)
def test_id_is_echoed_verbatim(request_id: Any, encoded: str) -> None:
    s = session()
    (call,) = steps(s, b'{"execute": "query-jobs", "id": ' + encoded.encode() + b"}")
    assert isinstance(call, Call)
    assert call.has_id
    reply = s.reply_for(call, [])
    assert reply is not None
    assert reply.text == '{"return": [], "id": ' + encoded + "}"
    assert s.error_for(call, "GenericError", "x").text == (
        '{"id": ' + encoded + ', "error": {"class": "GenericError", "desc": "x"}}'
    )


def test_no_id_means_no_id_member() -> None:
    s = session()
    (call,) = steps(s, b'{"execute": "query-jobs"}')
    assert isinstance(call, Call)
    assert not call.has_id
    reply = s.reply_for(call, None)
    assert reply is not None
    assert reply.text == '{"return": {}}'


def test_success_response_false_sends_nothing() -> None:
    s = session()
    (call,) = steps(s, b'{"execute": "silent"}')
    assert isinstance(call, Call)
    assert s.reply_for(call, None) is None


def test_stream_of_values_and_split_objects() -> None:
    s = session()
    first = steps(s, b'{"execute": "query-jobs"}{"execute"')
    assert [step.command for step in first if isinstance(step, Call)] == ["query-jobs"]
    rest = steps(s, b': "query-version",\n "arguments": {}}')
    assert [step.command for step in rest if isinstance(step, Call)] == ["query-version"]


def test_command_names_depend_on_mode() -> None:
    assert session(negotiated=False).command_names() == ["qmp_capabilities"]
    assert set(session().command_names()) == set(COMMANDS)


def test_greeting_text() -> None:
    s = Session(COMMANDS, {"version": {"qemu": {"major": 1, "minor": 2, "micro": 3},
                                       "package": "p"}, "capabilities": ["oob"]})
    assert s.greeting_text() == (
        '{"QMP": {"version": {"qemu": {"micro": 3, "minor": 2, "major": 1}, "package": "p"}, '
        '"capabilities": ["oob"]}}'
    )

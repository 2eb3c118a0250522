"""qjobd answers the recorded qemu-storage-daemon exchanges byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from exchanges import TRANSCRIPT
from helpers.wire import Wire

from qjobd import __version__


def test_greeting_has_qsd_shape_with_qjobd_version(qjobd_socket: Path) -> None:
    with Wire(qjobd_socket) as wire:
        line = wire.raw_line()
    assert line is not None
    assert line.endswith(b"}\r\n")
    major, minor, micro = (int(part) for part in __version__.split("."))
    expected = (
        f'{{"QMP": {{"version": {{"qemu": {{"micro": {micro}, "minor": {minor}, '
        f'"major": {major}}}, "package": "qjobd {__version__}"}}, '
        '"capabilities": ["oob", "x-qjobd-progress"]}}\r\n'
    )
    assert line.decode() == expected


def test_recorded_exchanges_byte_for_byte(qjobd_socket: Path) -> None:
    with Wire(qjobd_socket) as wire:
        wire.raw_line()
        for sent, expected in TRANSCRIPT:
            wire.send(sent)
            got = [wire.raw_line() for _ in expected]
            assert got == [(line + "\r\n").encode() for line in expected], sent


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_transcript_survives_any_chunking(qjobd_socket: Path, chunk: int) -> None:
    """The decoder works on a byte stream: how the bytes are split never matters."""
    stream = b"".join(sent for sent, _ in TRANSCRIPT)
    expected = [(line + "\r\n").encode() for _, lines in TRANSCRIPT for line in lines]
    with Wire(qjobd_socket) as wire:
        wire.raw_line()
        for start in range(0, len(stream), chunk):
            wire.send(stream[start:start + chunk])
        got = [wire.raw_line() for _ in expected]
    assert got == expected


def test_query_version_matches_greeting(qjobd_socket: Path) -> None:
    with Wire(qjobd_socket) as wire:
        greeting = wire.negotiate()
        assert wire.cmd("query-version") == {"return": greeting["QMP"]["version"]}


def test_quit_answers_then_exits(tmp_path: Path) -> None:
    from helpers.daemons import start_qjobd, stop

    path = tmp_path / "q.sock"
    process = start_qjobd(path)
    with Wire(path) as wire:
        wire.negotiate()
        assert wire.cmd("quit") == {"return": {}}
        assert wire.raw_line(timeout=5) is None  # connection closed after the reply
    assert process.wait(10) == 0
    assert not path.exists()
    stop(process)


def test_over_limit_input_gets_errors_and_the_session_survives(qjobd_socket: Path) -> None:
    with Wire(qjobd_socket) as wire:
        wire.negotiate()
        wire.send(b"[" * 1025 + b"\n")
        first = wire.reply()
        assert first == {"error": {"class": "GenericError",
                                   "desc": "JSON nesting depth limit exceeded"}}
        wire.send(b'{"execute": "query-jobs", "id": "after"}\n')
        # Whatever else the broken input produced, the next command is answered.
        while (reply := wire.reply()) is not None and reply.get("id") != "after":
            assert "error" in reply
        assert reply == {"return": [], "id": "after"}

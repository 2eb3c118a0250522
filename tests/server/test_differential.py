"""The same exchanges against qemu-storage-daemon 7.2 and qjobd give the same bytes."""

from __future__ import annotations

from pathlib import Path

from exchanges import TRANSCRIPT
from helpers.wire import Wire

# Inputs whose answers depend on what each daemon has, not on the protocol.
EXTRA = [
    b'{"execute": "query-jobs", "arguments": {}, "id": [null, true, false, -1, 1.5]}\n',
    b'{"execute": "job-cancel", "arguments": {"id": ["x"]}}\n',
    b'{"execute": "job-cancel", "arguments": {"id": true}}\n',
    b'{"execute": "block-job-set-speed", "arguments": {"device": "d"}}\n',
    b'{"execute": "block-job-set-speed", "arguments": {"device": "d", "speed": "1"}}\n',
    b'{"execute": "block-job-set-speed", "arguments": {"device": "d", "speed": 1.5}}\n',
    b'{"execute": "block-job-set-speed", "arguments": {"speed": 1, "device": 3}}\n',
    b'{"execute": "block-job-set-speed",'
    b' "arguments": {"device": "d", "speed": 99999999999999999999}}\n',
    b'{"execute": "block-job-cancel", "arguments": {"device": "d", "force": 1}}\n',
    b'{"execute": "block-job-cancel", "arguments": {"device": "d", "force": true}}\n',
    b'{"execute": "block-job-dismiss", "arguments": {"id": "d"}}\n',
    b'{"execute": "block-job-finalize", "arguments": {"id": "d"}}\n',
    b'{"execute": "block-job-resume", "arguments": {"device": "d"}}\n',
    b'{"execute": "query-version", "arguments": {"x": null}}\n',
    b'{"execute": "query-jobs", "id": "\\u00e9\\ud83d\\ude00"}\n',
    b'{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}}\n',
    b'{"execute": "query-jobs", "execute": "query-jobs"}\n',
    b'{"execute": "query-jobs", "exec-oob": "query-jobs"}\n',
    b'{"id": 1}\n',
    b'}\n',
    b'{"execute": "query-jobs", "id": 1e400}\n',
    b"{'execute': \"query-jobs\", 'id': 'it''s'}\n",
    b'nul\n',
    b']\n',
    b'  \n',
    b'{"execute": "query-jobs", "id": 18446744073709551616}\n',
    b'{"execute": "query-jobs", "id": -9223372036854775809}\n',
]


def _exchange(path: Path, inputs: list[bytes]) -> list[bytes]:
    """Every line answered to ``inputs``, sent one after another on a fresh session."""
    lines: list[bytes] = []
    with Wire(path) as wire:
        wire.raw_line()
        wire.send(b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}\n')
        wire.raw_line()
        for sent in inputs:
            wire.send(sent)
            # Mark the end of this input's answers with a command both daemons run.
            wire.send(b'{"execute": "query-jobs", "id": "end"}\n')
            while True:
                line = wire.raw_line(timeout=5)
                assert line is not None, sent
                if line == b'{"return": [], "id": "end"}\r\n':
                    break
                lines.append(sent + b" => " + line)
    return lines


def test_transcript_and_extras_match_qsd(qjobd_socket: Path, qsd_socket: Path) -> None:
    inputs = [sent for sent, _ in TRANSCRIPT[5:]] + EXTRA
    assert _exchange(qjobd_socket, inputs) == _exchange(qsd_socket, inputs)


def test_negotiation_phase_matches_qsd(qjobd_socket: Path, qsd_socket: Path) -> None:
    def run(path: Path) -> list[bytes | None]:
        with Wire(path) as wire:
            wire.raw_line()
            out = []
            for sent in [
                b'{"execute": "query-version"}\n', b'{"execute": "nosuch", "id": 1}\n',
                b'garbage\n', b'{"exec-oob": "qmp_capabilities"}\n',
                b'{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}}\n',
                b'{"execute": "qmp_capabilities", "arguments": {"x": 1}}\n',
                b'{"execute": "qmp_capabilities", "id": "n"}\n',
                b'{"execute": "qmp_capabilities"}\n',
            ]:
                wire.send(sent)
                out.append(wire.raw_line(timeout=5))
            return out

    assert run(qjobd_socket) == run(qsd_socket)

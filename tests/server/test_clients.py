"""Real clients: the qemu.qmp library, socat, many clients at once, slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from pathlib import Path

import pytest
import trio
import trio.lowlevel
from helpers.wire import Wire

from qjobd.server.connection import OUTGOING_LIMIT
from qjobd.server.daemon import Daemon

qmp = pytest.importorskip("qemu.qmp")


def test_qemu_qmp_client_runs_every_command(qjobd_socket: Path) -> None:
    async def session() -> dict[str, object]:
        client = qmp.QMPClient("qjobd-test")
        await client.connect(str(qjobd_socket))
        results: dict[str, object] = {}
        try:
            results["query-version"] = await client.execute("query-version")
            results["query-commands"] = await client.execute("query-commands")
            results["query-qmp-schema"] = await client.execute("query-qmp-schema")
            results["query-jobs"] = await client.execute("query-jobs")
            results["query-block-jobs"] = await client.execute("query-block-jobs")
            errors = {}
            for name, args in [
                ("qmp_capabilities", {}),
                ("job-pause", {"id": "x"}), ("job-resume", {"id": "x"}),
                ("job-cancel", {"id": "x"}), ("job-complete", {"id": "x"}),
                ("job-dismiss", {"id": "x"}), ("job-finalize", {"id": "x"}),
                ("block-job-pause", {"device": "x"}), ("block-job-resume", {"device": "x"}),
                ("block-job-cancel", {"device": "x"}), ("block-job-complete", {"device": "x"}),
                ("block-job-set-speed", {"device": "x", "speed": 0}),
                ("block-job-dismiss", {"id": "x"}), ("block-job-finalize", {"id": "x"}),
            ]:
                with pytest.raises(qmp.ExecuteError) as caught:
                    await client.execute(name, args)
                errors[name] = (caught.value.error_class, caught.value.error.error.desc)
            results["errors"] = errors
            results["quit"] = await client.execute("quit")
        finally:
            # After quit the daemon hangs up, as QEMU does: the client sees EOF.
            with contextlib.suppress(EOFError):
                await client.disconnect()
        return results

    results = asyncio.run(session())
    version = results["query-version"]
    assert isinstance(version, dict)
    assert version["package"].startswith("qjobd ")
    names = {entry["name"] for entry in results["query-commands"]}  # type: ignore[attr-defined]
    assert {"qmp_capabilities", "query-qmp-schema", "quit", "job-pause"} <= names
    schema = results["query-qmp-schema"]
    assert isinstance(schema, list)
    assert {entry["name"] for entry in schema if entry["meta-type"] == "command"} == names
    assert results["query-jobs"] == []
    assert results["query-block-jobs"] == []
    errors = results["errors"]
    assert errors["qmp_capabilities"] == (  # type: ignore[index]
        "CommandNotFound", "Capabilities negotiation is already complete, command ignored"
    )
    assert errors["job-pause"] == ("GenericError", "Job not found")  # type: ignore[index]
    assert errors["block-job-set-speed"] == (  # type: ignore[index]
        "DeviceNotActive", "Block job 'x' not found"
    )
    assert results["quit"] == {}


def test_socat_session(qjobd_socket: Path) -> None:
    script = (
        b'{"execute": "qmp_capabilities"}\n'
        b'{"execute": "query-version", "id": 1}\n'
        b'{"execute": "query-jobs", "id": 2}\n'
        b'{"execute": "quit"}\n'
    )
    result = subprocess.run(
        ["socat", "-t", "5", "-", f"UNIX-CONNECT:{qjobd_socket}"],
        input=script, capture_output=True, timeout=30, check=True,
    )
    lines = result.stdout.split(b"\r\n")
    assert lines[-1] == b""
    messages = [json.loads(line) for line in lines[:-1]]
    assert "QMP" in messages[0]
    assert messages[1:] == [
        {"return": {}},
        {"return": messages[0]["QMP"]["version"], "id": 1},
        {"return": [], "id": 2},
        {"return": {}},
    ]


async def _pipelined_client(path: Path, count: int, tag: str) -> list[object]:
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        requests = [b'{"execute": "qmp_capabilities"}\n'] + [
            b'{"execute": "query-jobs", "id": "%s-%d"}\n' % (tag.encode(), i)
            for i in range(count)
        ]
        await stream.send_all(b"".join(requests))
        buffer = b""
        replies: list[object] = []
        while len(replies) < count + 2:  # greeting + negotiation + count replies
            data = await stream.receive_some(65536)
            assert data, "connection closed early"
            buffer += data
            *lines, buffer = buffer.split(b"\r\n")
            replies.extend(json.loads(line) for line in lines)
    return [reply.get("id") for reply in replies[2:]]  # type: ignore[attr-defined]


async def test_fifty_pipelining_clients_get_replies_in_order(qjobd_socket: Path) -> None:
    results: dict[int, list[object]] = {}

    async def one(index: int) -> None:
        results[index] = await _pipelined_client(qjobd_socket, 200, f"c{index}")

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for index in range(50):
                nursery.start_soon(one, index)
    assert len(results) == 50
    for index, ids in results.items():
        assert ids == [f"c{index}-{i}" for i in range(200)]


async def test_client_that_never_reads_does_not_block_others(qjobd_socket: Path) -> None:
    hog = await trio.open_unix_socket(str(qjobd_socket))
    async with hog:
        # Large replies it never reads (several MiB): its socket buffers fill up and
        # the daemon's writer for it blocks, while its other work goes on.
        await hog.send_all(b'{"execute": "qmp_capabilities"}\n')
        await hog.send_all(b'{"execute": "query-qmp-schema"}\n' * 400)
        with trio.fail_after(120):
            ids = await _pipelined_client(qjobd_socket, 500, "ok")
        assert ids == [f"ok-{i}" for i in range(500)]


async def test_client_dropped_when_event_queue_overflows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Events never wait for a slow client: once its queue is full it is dropped."""
    caplog.set_level(logging.WARNING, logger="qjobd")
    daemon = Daemon()
    path = tmp_path / "d.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve, path)
        slow = await trio.open_unix_socket(str(path))
        reader = await trio.open_unix_socket(str(path))
        for stream in (slow, reader):
            await stream.send_all(b'{"execute": "qmp_capabilities"}\n')
        # Greeting and negotiation reply on both, so both are in command mode.
        for stream in (slow, reader):
            seen = b""
            while seen.count(b"\r\n") < 2:
                seen += await stream.receive_some(4096)
        events = 3 * OUTGOING_LIMIT
        received = 0
        everything_read = trio.Event()

        async def read_all() -> None:
            nonlocal received
            while received < events:
                data = await reader.receive_some(1 << 20)
                received += data.count(b"\r\n")
            everything_read.set()

        nursery.start_soon(read_all)
        for index in range(events):
            daemon.events.emit("JOB_STATUS_CHANGE", {"id": f"j{index}", "status": "running"})
            if index % 64 == 0:
                await trio.lowlevel.checkpoint()
        with trio.fail_after(30):
            await everything_read.wait()
        assert received == events
        assert len(daemon.connections) == 1
        assert any("dropping client" in record.getMessage() for record in caplog.records)
        await slow.aclose()
        await reader.aclose()
        daemon.request_exit()


def test_wire_helper_sees_eof(qjobd_socket: Path) -> None:
    with Wire(qjobd_socket) as wire:
        wire.negotiate()
        wire.send(b'{"execute": "quit"}\n')
        assert wire.reply() == {"return": {}}
        assert wire.raw_line(timeout=5) is None

"""Fairness and flow control: costly pipelined requests, clients that do not read.

Everything runs on real sockets against an in-process daemon, so the tests can look at
each connection's unsent bytes and the daemon-wide total.  Nothing here asserts on
time: progress is judged by what the daemon has done (a marker command at the end of
a batch), by counts and by order.
"""

from __future__ import annotations

import json
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from helpers.images import MiB, make_image

from qjobd.commands.introspect import CONSTANT_RESULTS
from qjobd.protocol.session import ReplyCache, Session
from qjobd.server.connection import (
    CLIENT_OUTPUT_LIMIT,
    REPLY_BACKLOG_LIMIT,
    TOTAL_OUTPUT_LIMIT,
    Connection,
)
from qjobd.server.daemon import Daemon

MARKER = "batch-done"


def schema_request(request_id: int | None = None) -> bytes:
    if request_id is None:
        return b'{"execute": "query-qmp-schema"}\n'
    return b'{"execute": "query-qmp-schema", "id": %d}\n' % request_id


class Client:
    """A raw non-blocking client driven from trio, so a test can fill its socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.setblocking(False)
        self._partial = b""
        self._lines: deque[bytes] = deque()

    def close(self) -> None:
        self.sock.close()

    async def line(self) -> bytes:
        """The next message, without its CR LF."""
        while not self._lines:
            await trio.lowlevel.wait_readable(self.sock)
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                raise EOFError("the daemon closed the connection")
            *complete, self._partial = (self._partial + data).split(b"\r\n")
            self._lines.extend(complete)
        return self._lines.popleft()

    async def message(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(await self.line())
        return value

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)

    def send_until_full(self, data: bytes) -> int:
        """Send ``data`` over and over until the socket takes no more; the count."""
        count = 0
        while True:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                return count
            assert sent == len(data), "short send: pick a divisor of the buffer"
            count += 1

    async def negotiate(self) -> None:
        assert "QMP" in await self.message()
        await self.send(b'{"execute": "qmp_capabilities"}\n')
        assert await self.message() == {"return": {}}

    async def command(self, execute: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = arguments
        await self.send(json.dumps(request).encode() + b"\n")
        reply = await self.message()
        assert "return" in reply, reply
        return reply["return"]


class Served:
    """A daemon serving in the test's nursery, and its socket."""

    def __init__(self, daemon: Daemon, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self.output = daemon.output
        self.events = daemon.events
        #: Every client connected, closed when the test ends however it ends.
        self.clients: list[Client] = []

    @property
    def connections(self) -> set[Connection]:
        return self.daemon.connections


@pytest.fixture
async def daemon(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Served]:
    served = Served(Daemon(), tmp_path / "d.sock")
    await nursery.start(served.daemon.serve, served.path)
    try:
        yield served
    finally:
        for client in served.clients:
            client.close()
        served.daemon.request_exit()


@pytest.fixture(scope="module")
def idle_daemon() -> Daemon:
    """A daemon that serves nothing: its dispatcher, for tests without sockets."""
    return Daemon()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the daemon to reach a state (the limit only guards against a hang)."""
    with trio.fail_after(60):
        while not condition():  # noqa: ASYNC110  (no event to wait for: poll)
            await trio.sleep(0.002)


async def connected(daemon: Served) -> tuple[Client, Connection]:
    """A negotiated client and the daemon's side of it."""
    before = set(daemon.connections)
    client = Client(daemon.path)
    daemon.clients.append(client)
    await client.negotiate()
    (connection,) = set(daemon.connections) - before
    return client, connection


async def schema_line(client: Client, request_id: int | None = None) -> bytes:
    """The reply to one query-qmp-schema (the client must have nothing pending)."""
    await client.send(schema_request(request_id))
    return await client.line()


async def schema_reply_size(client: Client) -> int:
    """Bytes of one schema reply (with a one-digit id) on the wire."""
    return len(await schema_line(client, 0)) + 2


async def read_to_the_end(client: Client) -> None:
    while True:
        await client.line()


async def node_names(client: Client) -> set[str]:
    return {node["node-name"] for node in await client.command("query-named-block-nodes")}


async def test_second_client_is_served_while_a_batch_runs(daemon: Served) -> None:
    """A client's 1,000 pipelined schema queries do not hold up a newcomer: it is
    greeted and answered before the batch's last command (the marker node) has run."""
    count = 1000
    hog, _ = await connected(daemon)
    batch = b"".join(schema_request(i) for i in range(count)) + json.dumps(
        {"execute": "blockdev-add", "arguments": {"driver": "null-co", "node-name": MARKER},
         "id": "marker"}).encode()
    replies: list[bytes] = []

    async def read_batch() -> None:
        for _ in range(count + 1):
            replies.append(await hog.line())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hog.send, batch)
        nursery.start_soon(read_batch)
        await until(lambda: len(replies) > 0)
        newcomer, _ = await connected(daemon)
        assert MARKER not in await node_names(newcomer)
        assert await newcomer.command("query-jobs") == []
        assert len(replies) < count
    first = json.loads(replies[0])
    for index, line in enumerate(replies[:count]):
        reply = json.loads(line)
        assert reply == {"return": first["return"], "id": index}
    assert json.loads(replies[count]) == {"return": {}, "id": "marker"}
    assert MARKER in await node_names(newcomer)


async def test_client_that_does_not_read_is_held_back(daemon: Served) -> None:
    """Its unsent output stays within the bound, the daemon stops reading its requests
    (its socket fills up), others are answered; when it reads it gets everything."""
    slow, connection = await connected(daemon)
    schema_size = await schema_reply_size(slow)
    big = 2 * REPLY_BACKLOG_LIMIT // schema_size
    await slow.send(b"".join(schema_request(i) for i in range(1, big + 1)))
    await until(lambda: connection.held_back)
    assert connection.unsent_bytes <= REPLY_BACKLOG_LIMIT
    # Cheap requests from now on, one per send so that none is split: the daemon
    # reads none of them, so the socket fills up and stays full.
    small = b'{"execute": "query-jobs"}\n'
    filled = slow.send_until_full(small)
    assert filled > 0
    for _ in range(20):
        await trio.lowlevel.checkpoint()
    assert slow.send_until_full(small) == 0
    assert connection.held_back
    assert connection.unsent_bytes <= REPLY_BACKLOG_LIMIT
    # An event fits (the room above the reply bound is for events) and goes behind
    # what is queued, ahead of every reply still to be made.
    daemon.events.emit("JOB_STATUS_CHANGE", {"id": "held", "status": "running"})
    assert daemon.connections >= {connection}

    other, _ = await connected(daemon)
    assert await other.command("query-jobs") == []
    assert len(await schema_line(other, 0)) + 2 == schema_size
    assert connection.held_back

    messages = [await slow.message() for _ in range(big + filled + 1)]
    (position,) = [i for i, message in enumerate(messages) if "event" in message]
    assert messages[position]["data"] == {"id": "held", "status": "running"}
    assert 0 < position < big  # some replies were queued before it, some made after
    del messages[position]
    schema = messages[0]["return"]
    assert messages[:big] == [{"return": schema, "id": index} for index in range(1, big + 1)]
    assert messages[big:] == [{"return": []}] * filled
    await until(lambda: not connection.held_back and connection.unsent_bytes == 0)
    assert await slow.command("query-jobs") == []


async def test_event_that_does_not_fit_drops_the_client(
    daemon: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="qjobd")
    slow, connection = await connected(daemon)
    schema_size = await schema_reply_size(slow)
    await slow.send(b"".join(schema_request(i) for i in range(2 * REPLY_BACKLOG_LIMIT
                                                               // schema_size)))
    await until(lambda: connection.held_back)
    reader, reader_connection = await connected(daemon)
    job_id = "x" * (CLIENT_OUTPUT_LIMIT - REPLY_BACKLOG_LIMIT + (1 << 19))
    daemon.events.emit("JOB_STATUS_CHANGE", {"id": job_id, "status": "running"})
    event = await reader.message()
    assert event["event"] == "JOB_STATUS_CHANGE"
    assert event["data"] == {"id": job_id, "status": "running"}
    await until(lambda: daemon.connections == {reader_connection})
    assert any("dropping client" in record.getMessage() for record in caplog.records)
    # The end of its stream (a reset if the daemon had left requests of it unread).
    with pytest.raises((EOFError, ConnectionResetError)):
        await read_to_the_end(slow)
    # What the dropped client had unsent is no longer counted.
    await until(lambda: daemon.output.queued == 0)
    assert await reader.command("query-jobs") == []


async def test_total_of_all_clients_is_bounded(daemon: Served) -> None:
    """Enough non-reading clients to pass the total: it holds (give or take the one
    reply each may always queue), and a fresh client is still answered at once."""
    clients = TOTAL_OUTPUT_LIMIT // REPLY_BACKLOG_LIMIT + 2
    probe, _ = await connected(daemon)
    schema_size = await schema_reply_size(probe)
    # Enough for each to pass its own bound even after its socket buffer is full.
    each = (REPLY_BACKLOG_LIMIT + (1 << 20)) // schema_size
    slow: list[tuple[Client, Connection]] = []
    for _ in range(clients):
        client, connection = await connected(daemon)
        await client.send(b"".join(schema_request(i) for i in range(each)))
        slow.append((client, connection))
    await until(lambda: all(connection.held_back for _, connection in slow))
    total = daemon.output.queued
    assert total == sum(connection.unsent_bytes for _, connection in slow)
    assert total <= TOTAL_OUTPUT_LIMIT + clients * schema_size
    # Some client waits for the total, not for its own bound.
    assert min(connection.unsent_bytes for _, connection in slow) < (
        REPLY_BACKLOG_LIMIT - schema_size)
    assert await probe.command("query-jobs") == []
    assert len(await schema_line(probe, 1)) + 2 == schema_size
    assert all(connection.held_back for _, connection in slow)
    for client, _ in slow:
        client.close()
    await until(lambda: len(daemon.connections) == 1 and daemon.output.queued == 0)


@pytest.mark.parametrize("request_id", [
    None, 1, -7, "x", "é\u2028\"\\", 1.5, -0.0, 1e300, True, [1, {"b": 2, "a": 3.25}],
    {"z": 1, "a": {"m": "\x01", "b": [False]}}, 18446744073709551615,
])
async def test_cached_schema_reply_is_byte_identical(idle_daemon: Daemon,
                                                     request_id: Any) -> None:
    """A reply spliced from the cached return text is what encoding it all gives."""
    daemon = idle_daemon
    cache = ReplyCache(CONSTANT_RESULTS)
    plain = Session(daemon.dispatcher.command_specs, daemon.greeting)
    cached = Session(daemon.dispatcher.command_specs, daemon.greeting, cache)
    request: dict[str, Any] = {"execute": "query-qmp-schema"}
    if request_id is not None:
        request["id"] = request_id
    line = json.dumps(request).encode()
    texts = []
    for session in (plain, cached, cached):
        session.negotiated = True
        (value,) = session.receive_data(line)
        call = session.classify(value)
        reply = session.cached_reply(call)  # type: ignore[arg-type]
        if reply is None:
            reply = await daemon.dispatcher.execute(
                call, session, request_id)  # type: ignore[arg-type]
        assert reply is not None
        texts.append(reply.text)
    assert cache.get("query-qmp-schema") is not None
    assert texts[0] == texts[1] == texts[2]


async def test_progress_for_a_client_that_never_reads_stays_small(
        daemon: Served, tmp_path: Path) -> None:
    """JOB_PROGRESS every 10 ms about four moving mirrors, to a client that never
    reads: once its socket is full its unsent output stops growing (only the latest
    progress matters), it is not dropped, another client is served and the jobs run
    to their end as if it were not there; when it reads at last it gets the end of
    every job."""
    jobs = [f"m{index}" for index in range(4)]
    # Eight seconds each, so that none gets ready (new events) while being watched.
    size = 32 * MiB

    async def progress_client() -> Client:
        """A client with JOB_PROGRESS every 10 ms (the interval's reply still to read:
        events may come first)."""
        client = Client(daemon.path)
        daemon.clients.append(client)
        assert "QMP" in await client.message()
        await client.send(b'{"execute": "qmp_capabilities",'
                          b' "arguments": {"enable": ["x-qjobd-progress"]}}\n')
        assert await client.message() == {"return": {}}
        await client.send(b'{"execute": "x-qjobd-progress-interval",'
                          b' "arguments": {"milliseconds": 10}}\n')
        return client

    before = set(daemon.connections)
    slow = await progress_client()
    assert await slow.message() == {"return": {}}
    (connection,) = set(daemon.connections) - before
    # A client that reads the same events, to count the ticks by.
    watcher = await progress_client()
    seen: list[dict[str, Any]] = []

    async def reply() -> Any:
        while "event" in (message := await watcher.message()):
            seen.append(message)
        return message

    assert await reply() == {"return": {}}
    other, _ = await connected(daemon)

    async def ask(execute: str, **arguments: Any) -> Any:
        """A command of the other client, whose job events are not this test's."""
        await other.send(json.dumps({"execute": execute, "arguments": arguments}).encode()
                         + b"\n")
        while "event" in (message := await other.message()):
            pass
        assert "return" in message, message
        return message["return"]

    for job in jobs:
        for role in ("src", "dst"):
            path = make_image(tmp_path / f"{job}-{role}.raw", size,
                              fill=1 if role == "src" else None)
            await ask("blockdev-add", **{
                "driver": "raw", "node-name": f"{job}-{role}",
                "file": {"driver": "file", "filename": str(path)}})
        # 64 KiB a step, 64 steps a second: its progress moves at every tick.
        await ask("blockdev-mirror", **{
            "job-id": job, "device": f"{job}-src", "target": f"{job}-dst", "sync": "full",
            "granularity": 65536, "buf-size": 65536, "speed": 4 << 20,
            "auto-dismiss": False})

    def progress_seen() -> int:
        return sum(1 for message in seen if message["event"] == "JOB_PROGRESS")

    async def watch_until(count: int) -> None:
        with trio.fail_after(60):
            while progress_seen() < count:
                seen.append(await watcher.message())

    # Until the slow client's socket is full and the daemon queues for it...
    with trio.fail_after(60):
        while not connection.unsent_bytes:
            await watch_until(progress_seen() + 1)
    # ... then for hundreds of events more.
    await watch_until(progress_seen() + 400)
    largest = max(len(json.dumps(message)) for message in seen) + 2
    assert connection in daemon.connections
    assert connection.unsent_bytes <= len(jobs) * largest
    assert await ask("query-jobs") != []
    for job in jobs:
        ready = await ask("x-job-wait", id=job, statuses=["ready"], timeout=60)
        assert ready["current-progress"] == size
        await ask("job-cancel", id=job)
        ended = await ask("x-job-wait", id=job, timeout=60)
        assert ended["status"] == "concluded"
        await ask("job-dismiss", id=job)
    assert connection in daemon.connections
    # Its backlog: the regular events of four jobs, and little progress.
    assert connection.unsent_bytes <= 64 * 1024
    last: dict[str, str] = {}
    with trio.fail_after(60):
        while len([job for job, status in last.items() if status == "concluded"]) < 4:
            message = await slow.message()
            if message.get("event") == "JOB_PROGRESS":
                last[message["data"]["id"]] = message["data"]["status"]
    assert sorted(last) == jobs
    await until(lambda: connection.unsent_bytes == 0)

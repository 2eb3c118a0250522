"""One client connection: a reader that runs commands in order, and a writer.

The reader feeds bytes to the sans-IO :class:`~qjobd.protocol.session.Session` and
runs the commands it yields one after another, so each client's replies keep the
order of its requests, while other clients' commands run concurrently in their own
tasks.

Fairness.  Every command is a cancellation point, and a reader lets the other tasks
run (a schedule point) once it has held the loop for :data:`TURN_SECONDS` since it
last waited or yielded.  Input is read :data:`READ_SIZE` bytes at a time, so decoding
one read fits in a turn too.  A client that pipelines thousands of costly commands in
one write therefore holds the loop a few milliseconds at a time, not for its whole
batch.  (A full schedule point per command costs about as much as running a small
command: it halved pipelined throughput, for nothing the budget does not give.)

Output.  Everything a client is sent (greeting, replies, events) is encoded to bytes
once, when it is produced; an event's bytes object is shared by all its clients.
When nothing is unsent, a message is written straight to the socket, without
blocking, by the task that produced it (no hop to another task per reply); what the
socket does not take is queued for the writer task, which sends the queue with
``writev`` as the client reads.  Replies to a batch of pipelined requests are queued
and written together when the batch ends.  Anything produced while something is
unsent goes behind it, so events emitted before a reply go out before it.

Flow control counts the bytes of unsent output (what the socket has not taken):

* A reply that does not fit waits, and with it the reader, so the client's further
  requests stay unread in its socket until it reads its replies; nobody else waits.
  It does not fit when the client's unsent bytes would pass
  :data:`REPLY_BACKLOG_LIMIT` (or :data:`OUTGOING_LIMIT` messages), or all clients'
  together would pass :data:`TOTAL_OUTPUT_LIMIT` (:class:`OutputBudget`).  A client
  with nothing unsent can always queue its next reply, so a client that reads what it
  asks for is never held back by the others' backlog.
* Events never wait.  A client whose unsent output an event would take past
  :data:`CLIENT_OUTPUT_LIMIT` (or :data:`OUTGOING_LIMIT` messages) is dropped and the
  drop logged.  The room between the two per-client bounds is for events to a client
  whose replies are being held back.  JOB_PROGRESS is the exception: the feed
  (:mod:`qjobd.server.progress`) sends none while anything is unsent, so only the
  latest progress reaches a slow client, and progress alone never drops one.

A reply is queued (or sent) with no checkpoint between the end of its command and the
queueing, so ``quit`` gets its answer out before the daemon stops the reader; what is
queued when the reader stops is still sent.

Hangup.  A client that closes its socket while one of its commands waits (an
``x-job-wait``) is noticed at once through the daemon's
:class:`~qjobd.server.hangup.HangupWatcher`, not when the command ends: the
connection ends as when a write finds the client gone, cancelling the command and
dropping the requests it had not read yet (QEMU too drops a closed monitor's queued
requests), so its task, its socket and its wait go away.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import struct
import time
from collections import deque
from typing import Any, Final

import trio
from trio.lowlevel import ParkingLot

from qjobd.commands.dispatch import Dispatcher
from qjobd.protocol.session import Call, Reply, ReplyCache, Session
from qjobd.server.events import PROGRESS_CAPABILITY, EventBus, wire_bytes
from qjobd.server.hangup import HangupWatcher
from qjobd.server.progress import ProgressFeed

__all__ = [
    "CLIENT_OUTPUT_LIMIT",
    "OUTGOING_LIMIT",
    "READ_SIZE",
    "REPLY_BACKLOG_LIMIT",
    "TOTAL_OUTPUT_LIMIT",
    "TURN_SECONDS",
    "Connection",
    "OutputBudget",
    "StdioChannel",
]

logger = logging.getLogger(__name__)

#: Messages a client may leave unsent: replies wait, an event past it drops the
#: client.  Bounds the queue's length whatever the messages' size (an event's bytes
#: are shared by all clients, so its bytes alone overstate what it costs each one).
OUTGOING_LIMIT: Final = 4096

#: Unsent bytes past which a client's next reply waits (its requests stop being
#: read) until it reads: a hundred query-qmp-schema replies.
REPLY_BACKLOG_LIMIT: Final = 3 << 20

#: Unsent bytes a client may have at most; an event that would take it past this
#: drops the client.  The 1 MiB above REPLY_BACKLOG_LIMIT is room for events to a
#: client whose replies are being held back.
CLIENT_OUTPUT_LIMIT: Final = 4 << 20

#: Unsent bytes all clients together may have before their replies wait (except the
#: next reply of a client with nothing unsent).  Keeps many slow clients from
#: adding up to gigabytes: with the daemon's own ~50 MiB this stays well under 100.
TOTAL_OUTPUT_LIMIT: Final = 32 << 20

#: Bytes asked from the socket per read.  Decoding 64 KiB of small requests costs
#: ~7 ms; 16 KiB keeps one read's decoding within a turn.
READ_SIZE: Final = 16384

#: Seconds of the loop a reader may use before it lets the other tasks run.
TURN_SECONDS: Final = 0.002

#: Buffers handed to one ``writev`` (far below any system's IOV_MAX).
WRITE_BATCH: Final = 64

_numbers = itertools.count(1)
_clock = time.perf_counter


def peer_uid(sock: trio.socket.SocketType) -> int | None:
    """The user id of the process at the other end of a Unix socket, if it tells."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class OutputBudget:
    """The unsent bytes of every client of one daemon, against one bound.

    Connections add what they queue and give back what they send or discard.  A
    reader held back only by this total parks its lot in :attr:`waiting`, and is
    woken when the total falls below the limit again.
    """

    def __init__(self, limit: int = TOTAL_OUTPUT_LIMIT) -> None:
        self.limit = limit
        #: Bytes queued for all clients and not yet sent.
        self.queued = 0
        #: Lots of readers waiting for the total to fall.
        self.waiting: set[ParkingLot] = set()

    def has_room(self, size: int) -> bool:
        return self.queued + size <= self.limit

    def take(self, size: int) -> None:
        self.queued += size

    def give_back(self, size: int) -> None:
        self.queued -= size
        if self.waiting and self.queued < self.limit:
            for lot in self.waiting:
                lot.unpark_all()


class StdioChannel:
    """A client on two descriptors, not a socket: QMP over stdin and stdout.

    Both are made non-blocking (the stdio chardev of QEMU does the same).  A
    regular file or ``/dev/null`` works too: reads and writes on those never block.
    """

    def __init__(self, read_fd: int = 0, write_fd: int = 1) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        for fd in (read_fd, write_fd):
            os.set_blocking(fd, False)


class Connection:
    """The life of one client, from greeting to close.

    :param output: the daemon-wide output budget (a private one when not given).
    :param replies: the daemon-wide cache of constant replies, if any.
    :param hangups: the daemon's hangup watcher; without one a client that hangs up
        is noticed only when something is written to it or its requests are read.
    """

    def __init__(self, dispatcher: Dispatcher, events: EventBus, greeting: dict[str, Any],
                 stream: trio.SocketStream | StdioChannel, *,
                 output: OutputBudget | None = None,
                 replies: ReplyCache | None = None,
                 hangups: HangupWatcher | None = None) -> None:
        self._dispatcher = dispatcher
        self._events = events
        self.number = next(_numbers)
        self.session = Session(dispatcher.command_specs, greeting, replies)
        if isinstance(stream, StdioChannel):
            # The stdio monitor's peer is whoever started the daemon.
            self.session.peer_uid = os.getuid()
        else:
            self.session.peer_uid = peer_uid(stream.socket)
        #: Commands the session may answer from the reply cache.
        self._cached = replies.commands if replies is not None else frozenset()
        # The stream owns the socket; the daemon closes it only after run() has
        # returned, so the descriptor cannot be reused under our tasks.  We do the
        # non-blocking I/O on it ourselves: trio's socket methods try the call,
        # fail, and then wait, which costs a syscall and an exception per message.
        if isinstance(stream, StdioChannel):
            self._read_fd, self._write_fd = stream.read_fd, stream.write_fd
        else:
            self._read_fd = self._write_fd = stream.socket.fileno()
        self._output = output if output is not None else OutputBudget()
        self._hangups = hangups
        self._queue: deque[bytes | memoryview] = deque()
        self._unsent = 0
        #: The writer parks here while the queue is empty.
        self._writer_idle = ParkingLot()
        #: The reader parks here while its next reply does not fit.
        self._room = ParkingLot()
        self._held_back = False
        #: No more output will be produced (the reader is done).
        self._closing = False
        #: The client is gone: output is discarded.
        self._broken = False
        #: The last read filled its buffer: more input is probably waiting.
        self._more_input = False
        self._turn_ends = 0.0
        self._scope = trio.CancelScope()
        self._reader_scope = trio.CancelScope()
        #: Where the JOB_PROGRESS feed runs, once the client enabled it.
        self._nursery: trio.Nursery | None = None
        self._feed_scope = trio.CancelScope()

    def __repr__(self) -> str:
        mode = "command" if self.session.negotiated else "negotiation"
        return f"<Connection {self.number} {mode} mode, {self._unsent} bytes unsent>"

    @property
    def unsent_bytes(self) -> int:
        """Bytes produced for this client that the socket has not taken yet."""
        return self._unsent

    @property
    def held_back(self) -> bool:
        """True while a reply waits for room, so the client's requests are not read."""
        return self._held_back

    # Section: used by the event bus and the daemon

    def offer(self, data: bytes) -> bool:
        """Queue an event without waiting; False when it does not fit (see above)."""
        if self._broken or self._closing:
            return True  # closing anyway; nothing to drop
        if self._unsent and (self._unsent + len(data) > CLIENT_OUTPUT_LIMIT
                             or len(self._queue) >= OUTGOING_LIMIT):
            return False
        self._put(data)
        return True

    def drop(self, reason: str) -> None:
        """Disconnect at once, discarding anything not yet sent."""
        logger.warning("dropping client %d: %s", self.number, reason)
        self._scope.cancel()

    def stop(self) -> None:
        """Stop taking requests; what is queued is still sent."""
        self._reader_scope.cancel()

    # Section: output

    def _put(self, data: bytes) -> None:
        """Send ``data`` now if nothing is ahead of it and the socket takes it, else
        queue what is left for the writer.  Never waits."""
        if self._broken:
            return
        if self._unsent:
            self._enqueue(data)
            return
        try:
            sent = os.write(self._write_fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._break()
            return
        if sent < len(data):
            self._enqueue(memoryview(data)[sent:] if sent else data)

    def _enqueue(self, data: bytes | memoryview) -> None:
        """Queue ``data`` behind what is unsent; the writer sends it when it runs."""
        self._queue.append(data)
        size = len(data)
        self._unsent += size
        self._output.take(size)
        if self._writer_idle:
            self._writer_idle.unpark()

    def _write_some(self) -> bool:
        """Send what the socket takes now, from any task; True when it is full."""
        queue = self._queue
        while queue:
            chunks = list(itertools.islice(queue, WRITE_BATCH))
            try:
                sent = os.writev(self._write_fd, chunks)
            except BlockingIOError:
                return True
            except OSError:
                self._break()
                return False
            self._sent(sent)
            if sent < sum(map(len, chunks)):
                return True
        return False

    def _reply_fits(self, size: int) -> bool:
        unsent = self._unsent
        return not unsent or (
            unsent + size <= REPLY_BACKLOG_LIMIT
            and len(self._queue) < OUTGOING_LIMIT
            and self._output.has_room(size)
        )

    async def _wait_for_room(self, size: int) -> None:
        """Wait until a reply of ``size`` bytes fits; meanwhile nothing is read."""
        self._held_back = True
        try:
            while not self._reply_fits(size):
                own_full = (self._unsent + size > REPLY_BACKLOG_LIMIT
                            or len(self._queue) >= OUTGOING_LIMIT)
                if own_full:
                    await self._room.park()  # our writer wakes us
                    continue
                # Only the total is in the way: any client's writer wakes us, and
                # so does ours if it empties our queue.
                self._output.waiting.add(self._room)
                try:
                    await self._room.park()
                finally:
                    self._output.waiting.discard(self._room)
        finally:
            self._held_back = False

    def _sent(self, size: int) -> None:
        """Forget the first ``size`` queued bytes: the socket took them."""
        self._unsent -= size
        self._output.give_back(size)
        queue = self._queue
        while size:
            head = queue[0]
            if len(head) <= size:
                size -= len(head)
                queue.popleft()
            else:
                queue[0] = memoryview(head)[size:]
                size = 0
        # Half empty before waking a held-back reader: it then queues replies in a
        # batch instead of one per write.
        if self._room and (not self._unsent or self._unsent <= REPLY_BACKLOG_LIMIT // 2):
            self._room.unpark_all()

    def _discard(self) -> None:
        self._output.give_back(self._unsent)
        self._unsent = 0
        self._queue.clear()

    def _break(self) -> None:
        """The client has gone: discard its output and end the connection."""
        self._broken = True
        self._discard()
        self._scope.cancel()

    async def _writer(self) -> None:
        while True:
            if not self._queue:
                if self._closing or self._broken:
                    return
                await self._writer_idle.park()
            elif self._write_some():
                await trio.lowlevel.wait_writable(self._write_fd)

    # Section: input

    async def run(self) -> None:
        logger.debug("client %d connected", self.number)
        # What we write to is what matters: a hangup there means nobody can receive
        # our replies (a stdin pipe's hangup is only the end of the requests).
        if self._hangups is not None:
            self._hangups.watch(self._write_fd, self._hung_up)
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._writer)
                    self._put(wire_bytes(self.session.greeting_text()))
                    try:
                        with self._reader_scope:
                            await self._reader()
                    finally:
                        self._events.unsubscribe(self)
                        self._feed_scope.cancel()
                        self._closing = True
                        self._writer_idle.unpark_all()
        finally:
            if self._hangups is not None:
                self._hangups.unwatch(self._write_fd)
            self._events.unsubscribe(self)
            self._discard()
        logger.debug("client %d disconnected", self.number)

    def _hung_up(self) -> None:
        logger.debug("client %d hung up", self.number)
        self._break()

    def _subscribe(self) -> None:
        """Command mode: events from now on, and JOB_PROGRESS if the client asked."""
        capabilities = self.session.capabilities
        self._events.subscribe(self, capabilities)
        if PROGRESS_CAPABILITY in capabilities and self._nursery is not None:
            feed = ProgressFeed(self, self.session, self._dispatcher.services.jobs,
                                self._events)
            self._nursery.start_soon(self._run_feed, feed)

    async def _run_feed(self, feed: ProgressFeed) -> None:
        with self._feed_scope:
            await feed.run()

    async def _checkpoint(self) -> None:
        """A cancellation point, and a schedule point once this turn is spent."""
        if _clock() >= self._turn_ends:
            await trio.lowlevel.checkpoint()
            self._turn_ends = _clock() + TURN_SECONDS
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    async def _wait_readable(self) -> bool:
        try:
            await trio.lowlevel.wait_readable(self._read_fd)
        except trio.ClosedResourceError:
            return False
        self._turn_ends = _clock() + TURN_SECONDS
        return True

    async def _receive(self) -> bytes | None:
        """The next input (b"" at its end), or None when the connection broke.

        Tries the socket before waiting for it.  Measured with a ping-pong client:
        the next request has usually arrived by the time the reply is out, and a read
        that finds nothing costs less than a wait (a registration and a trip through
        the scheduler) that was not needed; reading first was 1.3-1.5x faster.
        """
        while True:
            try:
                data = os.read(self._read_fd, READ_SIZE)
            except BlockingIOError:
                if not await self._wait_readable():
                    return None
                continue
            except OSError:
                return None
            self._more_input = len(data) == READ_SIZE
            return data

    async def _reader(self) -> None:
        session = self.session
        while True:
            data = await self._receive()
            if data is None:
                return
            requests = session.receive_data(data) if data else session.receive_eof()
            if not requests:
                # Part of a request (or the end): still a checkpoint per read, so a
                # huge request arriving fast does not hold the loop either.
                await self._checkpoint()
            left = len(requests)
            for request in requests:
                left -= 1
                await self._checkpoint()
                await self._run_step(session.classify(request), not left and not self._more_input)
            if not data:
                return

    async def _run_step(self, step: Call | Reply, last: bool) -> None:
        """Run one request and queue (or send) its reply.

        ``last``: no request is known to follow.  Replies to a batch of pipelined
        requests are queued and go out together, in one write, after the batch's
        last one (or from the writer, should a command of the batch wait); a lone
        request's reply is written at once.
        """
        if type(step) is Call:
            cached = self.session.cached_reply(step) if step.command in self._cached else None
            if cached is not None:
                text = cached.text
            else:
                was_negotiated = self.session.negotiated
                reply = await self._dispatcher.execute(
                    step, self.session, step.id if step.has_id else None)
                if self.session.negotiated and not was_negotiated:
                    self._subscribe()
                if reply is None:
                    return
                text = reply.text
        else:
            assert type(step) is Reply
            text = step.text
        # No checkpoint from here to the queueing when the reply fits: a reply must
        # be queued before anything can cancel us (quit relies on this).
        data = wire_bytes(text)
        if self._unsent and not self._reply_fits(len(data)):
            await self._wait_for_room(len(data))
        if not last:
            self._enqueue(data)
        elif self._unsent:
            self._enqueue(data)
            self._write_some()
        else:
            self._put(data)

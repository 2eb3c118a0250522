"""The daemon: schema, model, services, and the trio structure that serves clients.

Task tree while serving::

    serve()
     +-- accept loop (trio.serve_listeners), one listener per socket monitor
     +-- client nursery: one Connection.run() per client (the stdio monitor too)
     +-- hangup watcher (ends the connections whose client hung up)
     +-- job manager nursery (jobs run here, independent of any client)

A client that disconnects takes nothing else with it; ``quit`` or a signal stops the
accept loop, lets every client's queued messages drain for a moment, cancels the jobs,
then closes every block node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from qjobd.block.formats import FormatRegistry
from qjobd.block.graph import BlockGraph
from qjobd.commands.context import Services
from qjobd.commands.control import version_info
from qjobd.commands.dispatch import Dispatcher, HandlerMismatch
from qjobd.commands.introspect import CONSTANT_RESULTS
from qjobd.jobs.history import JobHistory
from qjobd.jobs.manager import JobManager
from qjobd.model.registry import Model
from qjobd.protocol.session import ReplyCache
from qjobd.qapi.introspect import introspect
from qjobd.qapi.schema import Schema
from qjobd.schema_path import bundled_schema_path
from qjobd.server.connection import Connection, OutputBudget, StdioChannel
from qjobd.server.events import EventBus
from qjobd.server.hangup import HangupWatcher
from qjobd.server.listener import ActivatedListener, StartupError, UnixListener, open_unix_listener

__all__ = ["DEFINED_SYMBOLS", "Daemon", "Listener"]

#: What the daemon serves on: sockets it made, or sockets it was handed.
Listener = UnixListener | ActivatedListener

logger = logging.getLogger(__name__)

#: Build-time symbols of QEMU's schema conditions that hold for qjobd.
DEFINED_SYMBOLS: Final = frozenset({"CONFIG_POSIX", "CONFIG_LINUX"})

#: How long clients get to receive what is queued for them when the daemon stops.
DRAIN_SECONDS: Final = 2.0


class Daemon:
    """Everything one running qjobd owns; it assembles the parts and runs them."""

    def __init__(self, schema_path: Path | None = None, *,
                 history_path: Path | None = None) -> None:
        schema = Schema(str(schema_path or bundled_schema_path()))
        self.model = Model(schema, DEFINED_SYMBOLS)
        self.events = EventBus(self.model)
        formats = FormatRegistry(
            qemu_drivers=(member.value for member in self.model.enum("BlockdevDriver")))
        self.block = BlockGraph(formats)
        self.jobs = JobManager(self.events)
        #: The job history file (none without a path), opened by serve().
        self.history = JobHistory(history_path) if history_path is not None else None
        self.jobs.history = self.history
        # Structured once: this also checks our introspection data against the schema.
        introspection = self.model.structure(
            "SchemaInfoList", introspect(schema, DEFINED_SYMBOLS))
        services = Services(
            model=self.model, block=self.block, jobs=self.jobs, formats=formats,
            introspection=introspection, request_exit=self.request_exit,
            history=self.history,
        )
        try:
            self.dispatcher = Dispatcher(schema, DEFINED_SYMBOLS, services)
        except HandlerMismatch as error:
            raise StartupError(str(error)) from error
        # Every capability of the schema is offered: QEMU's (oob) and qjobd's own,
        # which QEMU clients ignore, as the QMP specification asks them to.
        self.greeting = {"version": version_info(), "capabilities": [
            member.value for member in self.model.enum("QMPCapability")]}
        #: What all clients together have not read yet, against one bound.
        self.output = OutputBudget()
        #: Replies that never change, encoded once for every client.
        self.replies = ReplyCache(CONSTANT_RESULTS)
        self.connections: set[Connection] = set()
        #: Watches the clients' sockets for hangups while serving.
        self._hangups: HangupWatcher | None = None
        self._exit_requested = trio.Event()

    def request_exit(self) -> None:
        """Stop serving (``quit``, SIGINT, SIGTERM)."""
        self._exit_requested.set()

    def add_blockdev(self, options: Any) -> None:
        """``blockdev-add`` with ``options`` (JSON-shaped), for ``--blockdev`` at startup.

        :raise ArgumentError: the options do not fit ``BlockdevOptions``.
        :raise QMPError: the node cannot be added (as the command would answer).
        """
        arguments = self.model.structure_args("blockdev-add", options)
        self.block.add(self.model.unstructure("BlockdevOptions", arguments))

    async def serve(
        self, socket_path: Path | None = None, *,
        listeners: Sequence[Listener] = (), stdio: StdioChannel | None = None,
        task_status: trio.TaskStatus[Path | None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve QMP until :meth:`request_exit`: on a socket made at ``socket_path``,
        on ``listeners`` already listening (``--chardev`` sockets, sockets from systemd),
        and on ``stdio``; each is a monitor of its own, all share one daemon.

        :raise StartupError: the socket cannot be created (another daemon, bad path).
        """
        everything = list(listeners)
        if socket_path is not None:
            everything.append(await open_unix_listener(socket_path))
            logger.info("listening on %s", socket_path)
        if self.history is not None:
            self.history.start()
        try:
            await self._serve(everything, stdio, task_status, socket_path)
        finally:
            for listener in everything:
                listener.remove_file()
            # The jobs are gone (their nursery has ended): nothing uses the nodes now.
            self.block.close_all()
            if self.history is not None:
                self.history.close()
        logger.info("stopped")

    async def _serve(self, listeners: list[Listener], stdio: StdioChannel | None,
                     task_status: trio.TaskStatus[Path | None],
                     socket_path: Path | None) -> None:
        async with trio.open_nursery() as jobs_nursery:
            self.jobs.attach(jobs_nursery)
            self._hangups = HangupWatcher()
            try:
                async with trio.open_nursery() as watching:
                    watching.start_soon(self._hangups.run)
                    await self._serve_clients(listeners, stdio, task_status, socket_path)
                    watching.cancel_scope.cancel()
            finally:
                self._hangups.close()
                self._hangups = None
            # As QEMU on exit: force-cancel the jobs and let them clean up.
            self.jobs.cancel_all()
            jobs_nursery.cancel_scope.deadline = trio.current_time() + DRAIN_SECONDS

    async def _serve_clients(self, listeners: list[Listener], stdio: StdioChannel | None,
                             task_status: trio.TaskStatus[Path | None],
                             socket_path: Path | None) -> None:
        """Serve until exit is requested and the clients have drained: apart from
        :meth:`_serve`, so that the hangup watcher is there for every connection."""
        async with trio.open_nursery() as clients:
            async with trio.open_nursery() as acceptor:
                if listeners:
                    await acceptor.start(
                        partial(trio.serve_listeners, handler_nursery=clients),
                        self._handle_client,
                        listeners,
                    )
                if stdio is not None:
                    clients.start_soon(self._handle_client, stdio)
                task_status.started(socket_path)
                await self._exit_requested.wait()
                acceptor.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            for connection in list(self.connections):
                connection.stop()
            clients.cancel_scope.deadline = trio.current_time() + DRAIN_SECONDS

    async def _handle_client(self, stream: trio.SocketStream | StdioChannel) -> None:
        connection = Connection(self.dispatcher, self.events, self.greeting, stream,
                                output=self.output, replies=self.replies,
                                hangups=self._hangups)
        self.connections.add(connection)
        try:
            await connection.run()
        except Exception:
            logger.exception("client %d failed", connection.number)
        finally:
            self.connections.discard(connection)
            if isinstance(stream, trio.SocketStream):
                await trio.aclose_forcefully(stream)

"""The daemon: schema, model, services, and the trio structure that serves clients.

Task tree while serving::

    serve()
     +-- accept loop (trio.serve_listeners)
     +-- client nursery: one Connection.run() per client
     +-- job manager nursery (jobs run here, independent of any client)

A client that disconnects takes nothing else with it; ``quit`` or a signal stops the
accept loop, lets every client's queued messages drain for a moment, cancels the jobs,
then closes every block node.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from qjobd.block import BlockGraph
from qjobd.commands import HANDLERS, load_handlers
from qjobd.commands.control import version_info
from qjobd.jobs.manager import JobManager
from qjobd.model.registry import Model
from qjobd.protocol.session import CommandSpec
from qjobd.qapi.introspect import introspect
from qjobd.qapi.schema import Schema
from qjobd.schema_path import bundled_schema_path
from qjobd.server.connection import Connection
from qjobd.server.events import EventBus
from qjobd.server.listener import StartupError, open_unix_listener

__all__ = ["Daemon"]

logger = logging.getLogger(__name__)

#: Build-time symbols of QEMU's schema conditions that hold for qjobd.
DEFINED_SYMBOLS: Final = frozenset({"CONFIG_POSIX", "CONFIG_LINUX"})

#: How long clients get to receive what is queued for them when the daemon stops.
DRAIN_SECONDS: Final = 2.0


class Daemon:
    """Everything one running qjobd owns."""

    def __init__(self, schema_path: Path | None = None) -> None:
        self.schema = Schema(str(schema_path or bundled_schema_path()))
        self.model = Model(self.schema, DEFINED_SYMBOLS)
        handlers = load_handlers()
        commands = [
            command for command in self.schema.commands()
            if command.ifcond.evaluate(DEFINED_SYMBOLS)
        ]
        names = {command.name for command in commands}
        missing = sorted(names - handlers.keys())
        orphans = sorted(handlers.keys() - names)
        if missing or orphans:
            raise StartupError(
                "qjobd: schema and handlers disagree: "
                f"commands without handler {missing}, handlers without command {orphans}"
            )
        # query-commands lists the most recently registered command first, as QEMU.
        self.command_specs = {
            command.name: CommandSpec(command.name, command.allow_oob, command.success_response)
            for command in reversed(commands)
        }
        # Structured once: this also checks our introspection data against the schema.
        self.introspection = self.model.structure(
            "SchemaInfoList", introspect(self.schema, DEFINED_SYMBOLS)
        )
        self.greeting = {"version": version_info(), "capabilities": ["oob"]}
        self.events = EventBus()
        #: The block graph: every node blockdev-add (or a job) opened.
        self.block = BlockGraph()
        self.jobs = JobManager(self.events)
        self.connections: set[Connection] = set()
        self._exit_requested = trio.Event()

    @property
    def handlers(self) -> dict[str, Any]:
        return HANDLERS

    def request_exit(self) -> None:
        """Stop serving (``quit``, SIGINT, SIGTERM)."""
        self._exit_requested.set()

    async def serve(
        self, socket_path: Path, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``socket_path`` until :meth:`request_exit`.

        :raise StartupError: the socket cannot be created (another daemon, bad path).
        """
        listener = await open_unix_listener(socket_path)
        logger.info("listening on %s", socket_path)
        try:
            async with trio.open_nursery() as jobs_nursery:
                self.jobs.attach(jobs_nursery)
                async with trio.open_nursery() as clients:
                    async with trio.open_nursery() as acceptor:
                        await acceptor.start(
                            partial(trio.serve_listeners, handler_nursery=clients),
                            self._handle_client,
                            [listener],
                        )
                        task_status.started(socket_path)
                        await self._exit_requested.wait()
                        acceptor.cancel_scope.cancel()
                    await listener.aclose()
                    for connection in list(self.connections):
                        connection.stop()
                    clients.cancel_scope.deadline = trio.current_time() + DRAIN_SECONDS
                # As QEMU on exit: force-cancel the jobs and let them clean up.
                self.jobs.cancel_all()
                jobs_nursery.cancel_scope.deadline = trio.current_time() + DRAIN_SECONDS
        finally:
            listener.remove_file()
            # The jobs are gone (their nursery has ended): nothing uses the nodes now.
            self.block.close_all()
        logger.info("stopped")

    async def _handle_client(self, stream: trio.SocketStream) -> None:
        connection = Connection(self, stream)
        self.connections.add(connection)
        try:
            await connection.run()
        except Exception:
            logger.exception("client %d failed", connection.number)
        finally:
            self.connections.discard(connection)
            await trio.aclose_forcefully(stream)

"""What a command handler may touch: the daemon's services and the calling session.

Handlers receive a :class:`CommandContext` instead of the daemon, so each one says
by what it reads which services it uses, and nothing in ``commands/`` needs to know
how the daemon is put together (the server imports this package, never the other
way round).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from qjobd.block.formats import FormatRegistry
from qjobd.block.graph import BlockGraph
from qjobd.jobs.history import JobHistory
from qjobd.jobs.job import JobOrigin
from qjobd.jobs.manager import JobManager
from qjobd.model.registry import Model
from qjobd.protocol.session import Session

__all__ = ["CommandContext", "Services"]


@attrs.frozen
class Services:
    """The daemon-wide state handlers work on; one record, built by the daemon."""

    #: Runtime types of the schema: handlers structure their replies with it.
    model: Model
    #: Every block node blockdev-add (or a job) opened.
    block: BlockGraph
    #: Every job, and the nursery they run in.
    jobs: JobManager
    #: Which image formats qjobd can probe, create and open.
    formats: FormatRegistry
    #: ``query-qmp-schema``'s answer, structured once at start-up.
    introspection: list[Any]
    #: Ask the daemon to stop serving (``quit``).
    request_exit: Callable[[], None]
    #: The persistent record of past jobs (None when the daemon keeps none).
    history: JobHistory | None = None


@attrs.define(slots=True)
class CommandContext:
    """One command's view: the services, its session, and the request itself."""

    services: Services
    session: Session
    #: The ``id`` of the request being run, or None; recorded by jobs it starts.
    request_id: Any = None
    #: The command being run and its arguments as sent (jobs record them too).
    command: str | None = None
    arguments: dict[str, Any] | None = None

    @property
    def origin(self) -> JobOrigin:
        """What a job this command creates records about its start."""
        return JobOrigin(request_id=self.request_id, uid=self.session.peer_uid,
                         command=self.command, arguments=self.arguments)

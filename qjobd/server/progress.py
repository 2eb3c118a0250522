"""JOB_PROGRESS for one client: a feed that reports the jobs that moved.

A client that enabled the ``x-qjobd-progress`` capability gets a :class:`ProgressFeed`
task next to its connection.  Every interval (the session's, 500 ms unless the client
set another with ``x-qjobd-progress-interval``) it looks at every job and sends a
JOB_PROGRESS for each whose status or progress changed since it last reported it, so
a job gets at most one event per interval and a still job none.  The event that
closes a job's series, when it concludes, comes from the job manager through the
event bus (at once, with the error if it failed); the feed leaves concluded jobs to
it.

Only the latest progress matters, so a client that is not reading is not sent
more of it: a tick that finds output of the client still unsent (its socket is full)
sends nothing and leaves what it would have reported to the first tick after the
client has caught up, which then reports every job that moved meanwhile, as it is
then.  A slow client thus gets fewer, fresher events; one that never reads holds at
most one tick's worth of them, instead of a backlog that grows with every tick
until it passes the bound on unsent output and the client is dropped (the fate of
a client that does not read QEMU's events, which cannot be coalesced).  A client
that reads has nothing unsent when the ticks come and gets every event as before.
"""

from __future__ import annotations

from typing import Protocol

import trio

from qjobd.jobs.details import progress_event
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import Job
from qjobd.jobs.manager import JobManager
from qjobd.protocol.session import Session
from qjobd.server.events import EventBus

__all__ = ["ProgressFeed"]

#: Statuses the feed leaves to the last event (sent when the job concludes).
_OVER = (JobStatus.CONCLUDED, JobStatus.NULL)


class Client(Protocol):
    @property
    def unsent_bytes(self) -> int:
        """Bytes produced for the client that its socket has not taken yet."""

    def offer(self, data: bytes) -> bool:
        """Queue an event without waiting; False when it does not fit."""

    def drop(self, reason: str) -> None:
        """Disconnect the client."""


class ProgressFeed:
    """Periodic JOB_PROGRESS events for one client."""

    def __init__(self, client: Client, session: Session, jobs: JobManager,
                 events: EventBus) -> None:
        self._client = client
        self._session = session
        self._jobs = jobs
        self._events = events
        #: What was last reported of each job still around.
        self._reported: dict[Job, tuple[JobStatus, int, int]] = {}

    def tick(self) -> bool:
        """Report the jobs that moved; False when the client had to be dropped.

        Nothing while the client has output unsent: see the module's docstring.
        """
        if self._client.unsent_bytes:
            return True
        reported: dict[Job, tuple[JobStatus, int, int]] = {}
        for job in list(self._jobs.jobs.values()):
            if job.status in _OVER:
                continue
            state = (job.status, job.progress_current, job.progress_total)
            reported[job] = state
            if self._reported.get(job) == state:
                continue
            wire = self._events.encode("JOB_PROGRESS", progress_event(job))
            if not self._client.offer(wire):
                self._client.drop(f"JOB_PROGRESS ({len(wire)} bytes) does not fit "
                                  "its unsent output")
                return False
        self._reported = reported
        return True

    async def run(self) -> None:
        while True:
            await trio.sleep(self._session.progress_interval)
            if not self.tick():
                return

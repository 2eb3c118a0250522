"""JOB_PROGRESS for one client: a feed that reports the jobs that moved.

A client that enabled the ``x-qjobd-progress`` capability gets a :class:`ProgressFeed`
task next to its connection.  Every interval (the session's, 500 ms unless the client
set another with ``x-qjobd-progress-interval``) it looks at every job and sends a
JOB_PROGRESS for each whose status or progress changed since it last reported it, so
a job gets at most one event per interval and a still job none.  The event that
closes a job's series, when it concludes, comes from the job manager through the
event bus (at once, with the error if it failed); the feed leaves concluded jobs to
it.

Events are offered without waiting, like every event: a client too slow to take
them is dropped, and no other client or job waits for it.
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
        """Report the jobs that moved; False when the client had to be dropped."""
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

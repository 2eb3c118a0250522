"""qjob's connection to a daemon: what it offers, and following jobs.

qjob talks to qjobd or to qemu-storage-daemon through the generated client
(:mod:`qjobd.client`).  qjobd's job extensions are used only when the daemon says
it has them: the ``x-qjobd-progress`` capability in its greeting (then enabled,
for ``JOB_PROGRESS`` events), and commands listed by ``query-qmp-schema``
(``x-job-wait``, ``x-query-job-history``).  Without them qjob waits on
``JOB_STATUS_CHANGE`` events and watches by polling ``query-jobs``, which every
QEMU has.  The extensions are sent by name with :meth:`ClientBase.execute` and
their replies read as JSON, so qjob works whether or not the committed client was
generated from a schema that has them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import attrs
from qemu.qmp import Runstate
from qemu.qmp.error import QMPError

from qjobd.client import Client, Event, EventStream, ExecuteError
from qjobd.client import events as ev
from qjobd.client.models import JobInfo

__all__ = ["PROGRESS_CAPABILITY", "ConnectionLost", "JobView", "Session", "WaitTimeout",
           "apply_job_data", "connect"]

PROGRESS_CAPABILITY = "x-qjobd-progress"
WAIT_COMMAND = "x-job-wait"
HISTORY_COMMAND = "x-query-job-history"

#: Statuses after which a job does no more work.
FINAL = frozenset(("concluded", "null"))

#: How far along its life a status is.  A job never goes back to a lower rank
#: (running, paused, ready and standby alternate, all one rank), so a status change
#: of lower rank than what a view shows is older news than the reply that showed
#: it: the events a job sent before a query-jobs reply are taken in after it.
_RANK = {"created": 0, "running": 1, "paused": 1, "ready": 1, "standby": 1,
         "waiting": 2, "pending": 3, "aborting": 4, "concluded": 5, "null": 6}


#: How often a wait for events looks whether the connection is still there: qemu.qmp
#: does not wake an event listener when the daemon goes away.
_LIVENESS = 0.5


class WaitTimeout(Exception):
    """A job did not finish within the time asked for."""


class ConnectionLost(Exception):
    """The daemon closed the connection (it quit or died) while qjob followed a job."""


@attrs.define
class JobView:
    """What qjob knows of one job, from query-jobs replies and events."""

    id: str
    type: str = "?"
    status: str = "?"
    current: int = 0
    total: int = 0
    error: str | None = None
    description: str = ""
    #: Per second, as JOB_PROGRESS and the detailed JobInfo give it (an int).
    rate: int | None = None
    #: When the job concluded (seconds since the epoch), from the detailed JobInfo.
    time_finished: float | None = None
    #: Seen going to concluded/null, or gone from query-jobs after being seen.
    finished: bool = False
    #: The daemon's detailed JobInfo as it sent it (x-job-wait), for --json: it says
    #: more than this view keeps, in the daemon's own member names.
    details: Mapping[str, object] | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def update_from_info(self, info: JobInfo) -> None:
        self.type, self.status = info.type.value, info.status.value
        self.current, self.total = info.current_progress, info.total_progress
        if info.error is not None:
            self.error = info.error
        self.finished = self.finished or self.status in FINAL

    def to_json(self) -> dict[str, object]:
        if self.details is not None:
            return dict(self.details)
        out: dict[str, object] = {"id": self.id, "type": self.type, "status": self.status,
                                  "current-progress": self.current,
                                  "total-progress": self.total}
        if self.error is not None:
            out["error"] = self.error
        if self.description:
            out["progress-description"] = self.description
        if self.rate is not None:
            out["rate"] = self.rate
        return out


class Session:
    """A negotiated client plus what the daemon offers."""

    def __init__(self, client: Client, progress: bool) -> None:
        self.client = client
        #: JOB_PROGRESS events are enabled for this session.
        self.progress = progress
        self._commands: frozenset[str] | None = None

    async def commands(self) -> frozenset[str]:
        """Command names from ``query-qmp-schema`` (read once)."""
        if self._commands is None:
            reply = await self.client.execute("query-qmp-schema")
            names = set()
            if isinstance(reply, list):
                for entry in reply:
                    if isinstance(entry, dict) and entry.get("meta-type") == "command":
                        names.add(str(entry.get("name")))
            self._commands = frozenset(names)
        return self._commands

    async def has_command(self, name: str) -> bool:
        return name in await self.commands()

    async def jobs(self) -> list[JobInfo]:
        return await self.client.query_jobs()

    async def close(self) -> None:
        """Disconnect; a daemon that is gone already is no further error (qemu.qmp
        raises what ended the connection again here)."""
        try:
            await self.client.disconnect()
        except (QMPError, OSError, EOFError):
            pass

    # Following jobs.

    def apply_event(self, jobs: dict[str, JobView], event: Event) -> None:
        """Update ``jobs`` from one event (status changes, completion errors, and
        JOB_PROGRESS when enabled)."""
        if isinstance(event, ev.JobStatusChangeEvent):
            view = jobs.setdefault(event.id, JobView(event.id))
            if _RANK.get(event.status.value, 0) >= _RANK.get(view.status, 0):
                view.status = event.status.value
            view.finished = view.finished or view.status in FINAL
        elif isinstance(event, ev.BlockJobCompletedEvent | ev.BlockJobCancelledEvent):
            view = jobs.setdefault(event.device, JobView(event.device))
            view.current, view.total = event.offset, event.len
            if isinstance(event, ev.BlockJobCancelledEvent):
                view.error = view.error or "cancelled"
            elif event.error is not None:
                view.error = event.error
        else:
            name = event.raw.get("event")
            data = event.raw.get("data")
            if name == "JOB_PROGRESS" and isinstance(data, Mapping):
                apply_job_data(jobs, data)

    async def wait(self, job_id: str, limit: float | None) -> JobView:
        """Wait until ``job_id`` finishes, at most ``limit`` seconds; its last view.

        :raise WaitTimeout: when ``limit`` seconds pass first.
        :raise LookupError: when there is no such job.
        """
        if await self.has_command(WAIT_COMMAND):
            return await self._wait_extension(job_id, limit)
        try:
            return await asyncio.wait_for(self._wait_events(job_id), limit)
        except TimeoutError:
            raise WaitTimeout(job_id) from None

    async def _wait_extension(self, job_id: str, limit: float | None) -> JobView:
        """``x-job-wait``, in rounds of a minute when there is no limit."""
        while True:
            arguments: dict[str, object] = {"id": job_id,
                                            "timeout": 60.0 if limit is None else limit}
            try:
                reply = await self.client.execute(WAIT_COMMAND, arguments)
            except ExecuteError as error:
                text = str(error)
                if text == "Job not found":  # QEMU's words, which x-job-wait keeps
                    raise LookupError(job_id) from None
                if not text.startswith("Timed out after "):
                    raise
                if limit is not None:
                    raise WaitTimeout(job_id) from None
                continue
            break
        view = JobView(job_id, finished=True)
        if isinstance(reply, Mapping):
            apply_job_data({job_id: view}, reply)
            view.details = reply
        return view

    async def _wait_events(self, job_id: str) -> JobView:
        views: dict[str, JobView] = {}
        with self.client.events() as stream:
            infos = {info.id: info for info in await self.jobs()}
            if job_id not in infos:
                raise LookupError(job_id)
            view = views[job_id] = JobView(job_id)
            view.update_from_info(infos[job_id])
            while not view.finished:
                event = await self._next_event(stream, None)
                if event is not None:
                    self.apply_event(views, event)
        if view.status == "concluded" and view.error is None:
            # Still listed (auto-dismiss off): the reply has the error, if any.
            for info in await self.jobs():
                if info.id == job_id:
                    view.update_from_info(info)
        return view

    async def _next_event(self, stream: EventStream[Event],
                          seconds: float | None) -> Event | None:
        """The next event, or None after ``seconds`` (never with None).

        :raise ConnectionLost: when the daemon goes away meanwhile; qemu.qmp would
            leave the listener waiting forever.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if self.client.qmp.runstate != Runstate.RUNNING:
                raise ConnectionLost()
            left = _LIVENESS if deadline is None else deadline - time.monotonic()
            try:
                return await asyncio.wait_for(stream.get(), max(0.0, min(left, _LIVENESS)))
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    return None

    async def follow(self, views: dict[str, JobView], interval: float,
                     redraw: Callable[[], None], *, only: str | None = None,
                     start: Callable[[], Awaitable[None]] | None = None) -> None:
        """Keep ``views`` current, calling ``redraw`` after each change: from events
        when JOB_PROGRESS is enabled, else by polling query-jobs every ``interval``
        seconds.

        Without ``only``, until every job seen has finished.  With ``only``, until
        that job has finished or is ready (a mirror or an active commit in sync,
        which ends only when told to, so waiting longer would be waiting forever);
        other jobs do not hold it up.  ``start`` (which starts that job) runs once
        events are collected, so none of the job's is missed, however fast it ends.
        """
        def following() -> bool:
            if only is None:
                return any(not v.finished for v in views.values())
            view = views.get(only)
            return view is None or not (view.finished or view.status == "ready")

        with self.client.events() as stream:
            if start is not None:
                await start()
            await self._poll(views)
            redraw()
            next_poll = time.monotonic() + interval
            while following():
                event = await self._next_event(
                    stream, max(0.0, next_poll - time.monotonic()))
                if event is None:
                    if not self.progress:
                        await self._poll(views)
                    next_poll = time.monotonic() + interval
                else:
                    self.apply_event(views, event)
                redraw()
            # Events sent before the reply that showed a job gone (its completion,
            # with any error) are already queued: take them in.
            while (event := await self._next_event(stream, 0.05)) is not None:
                self.apply_event(views, event)
            redraw()

    async def _poll(self, views: dict[str, JobView]) -> None:
        infos = {info.id: info for info in await self.jobs()}
        for job_id, info in infos.items():
            views.setdefault(job_id, JobView(job_id)).update_from_info(info)
        for job_id, view in views.items():
            if job_id not in infos and not view.finished:
                view.finished = True  # dismissed (auto-dismiss) since the last look
                view.status = "null"


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def apply_job_data(jobs: dict[str, JobView], data: Mapping[str, object]) -> None:
    """A JOB_PROGRESS event's data or an extension's detailed job info."""
    job_id = data.get("id")
    if not isinstance(job_id, str):
        return
    view = jobs.setdefault(job_id, JobView(job_id))
    if isinstance(data.get("type"), str):
        view.type = str(data["type"])
    status = data.get("status")
    if isinstance(status, str) and _RANK.get(status, 0) >= _RANK.get(view.status, 0):
        view.status = status
    # current-progress never decreases: a lower one is older news.
    view.current = max(view.current,
                       _int(data.get("current", data.get("current-progress")), view.current))
    view.total = _int(data.get("total", data.get("total-progress")), view.total)
    description = data.get("description", data.get("progress-description"))
    if isinstance(description, str):
        view.description = description
    rate = data.get("rate")
    if isinstance(rate, int) and not isinstance(rate, bool):
        view.rate = rate
    finished_at = data.get("time-finished")
    if isinstance(finished_at, Mapping):
        seconds, micro = finished_at.get("seconds"), finished_at.get("microseconds")
        if isinstance(seconds, int) and isinstance(micro, int):
            view.time_finished = seconds + micro / 1e6
    if isinstance(data.get("error"), str):
        view.error = str(data["error"])
    view.finished = view.finished or view.status in FINAL


async def connect(socket: Path, *, progress: bool = False) -> Session:
    """Connect to the daemon on ``socket``; with ``progress``, enable JOB_PROGRESS
    events if the greeting offers them.

    :raise OSError: and qemu.qmp's ConnectError when nobody answers there.
    """
    client = Client("qjob")
    await client.connect(str(socket), negotiate=False)
    enable = [PROGRESS_CAPABILITY] if progress and (
        PROGRESS_CAPABILITY in client.capabilities) else []
    await client.negotiate(enable)
    return Session(client, bool(enable))

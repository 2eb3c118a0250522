"""Recording the events an in-process :class:`EventBus` sends, and waiting on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
import trio.lowlevel

from qjobd.server.events import EventBus

#: (name, data) as observers of the bus get them.
Event = tuple[str, dict[str, Any] | None]

#: How long a wait may take before the test fails (wrap a wait in trio.fail_after
#: for a tighter bound).
WAIT_LIMIT = 30.0


class _Waiter(trio.abc.Instrument):
    """Checks a predicate after every step of every task until it holds once."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self.predicate = predicate
        self.held = trio.Event()
        self.error: BaseException | None = None

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.held.is_set():
            return
        try:
            if not self.predicate():
                return
        except Exception as error:  # raised again in the waiting task
            self.error = error
        self.held.set()


class EventRecorder:
    """Keeps every event ``bus`` sends, in order (the bus checks each payload against
    the schema first), and lets a test wait for a state of the engine."""

    def __init__(self, bus: EventBus) -> None:
        self.seen: list[Event] = []
        bus.observers.append(self._record)

    def _record(self, name: str, data: dict[str, Any] | None) -> None:
        self.seen.append((name, data))

    def statuses(self, job_id: str) -> list[str]:
        """The JOB_STATUS_CHANGE statuses of ``job_id``, in order."""
        return [data["status"] for name, data in self.seen
                if name == "JOB_STATUS_CHANGE" and data and data["id"] == job_id]

    def names(self) -> list[str]:
        """The names of every event but JOB_STATUS_CHANGE, in order."""
        return [name for name, _ in self.seen if name != "JOB_STATUS_CHANGE"]

    def data(self, name: str) -> list[dict[str, Any] | None]:
        """The payloads of the ``name`` events, in order."""
        return [data for seen, data in self.seen if seen == name]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; fail after :data:`WAIT_LIMIT` seconds.

        The predicate is checked now and then after every step of any trio task: each
        event is sent from one, and so is every change the engine makes without an
        event (progress, ``busy``, a bitmap emptied), worker threads' results
        included, since a task takes them.  No polling, no wall-clock sleep.  It may
        have stopped holding by the time the caller runs again.

        Under the autojump clock the limit is virtual: there, wait only for what trio
        tasks alone bring about (the clock jumps while a worker thread runs).
        """
        if predicate():
            return
        waiter = _Waiter(predicate)
        trio.lowlevel.add_instrument(waiter)
        try:
            with trio.move_on_after(WAIT_LIMIT) as waiting:
                await waiter.held.wait()
        finally:
            trio.lowlevel.remove_instrument(waiter)
        if waiter.error is not None:
            raise waiter.error
        assert not waiting.cancelled_caught, (
            f"still waiting after {WAIT_LIMIT} s; the last events: {self.seen[-8:]}")

    async def wait_status(self, job_id: str, status: str) -> None:
        """Return once ``job_id`` has been in ``status`` (now or before)."""
        await self.wait_for(lambda: status in self.statuses(job_id))

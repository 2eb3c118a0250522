"""The job manager: the registry of jobs and the nursery they run in.

Jobs belong to the daemon, not to the client that started them: they run in the
manager's nursery, so a client may disconnect while its backup goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import trio

    from qjobd.server.events import EventBus

__all__ = ["JobManager"]


class JobManager:
    """Owns every job, in creation order, by id."""

    def __init__(self, events: EventBus) -> None:
        self.events = events
        self.jobs: dict[str, Any] = {}
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the manager the nursery its jobs will run in."""
        self._nursery = nursery

    def find(self, job_id: str) -> Any | None:
        return self.jobs.get(job_id)

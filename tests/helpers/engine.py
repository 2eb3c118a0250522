"""The job engine in process: a block graph, a job manager and its recorded events.

The ``engine`` fixture (``tests/jobs/conftest.py``) attaches the manager to a nursery
for the test's duration; tests build jobs with the manager as the QMP handlers do.
"""

from __future__ import annotations

from typing import Any

from helpers.events import EventRecorder
from helpers.model import event_bus
from qjobd.block import BlockGraph
from qjobd.jobs.job import Job, JobDriver
from qjobd.jobs.manager import JobManager


class Engine:
    """What a daemon runs jobs with, minus the sockets."""

    def __init__(self) -> None:
        bus = event_bus()
        self.graph = BlockGraph()
        self.manager = JobManager(bus)
        #: Every event the manager's bus sent (payloads checked against the schema).
        self.events = EventRecorder(bus)

    def start(self, job_id: str, driver: JobDriver, **options: Any) -> Job:
        """Create job ``job_id`` running ``driver`` and start it."""
        job = self.manager.create(job_id, driver, **options)
        self.manager.start(job)
        return job

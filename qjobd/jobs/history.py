"""The job history: every job's detailed information, kept in SQLite across restarts.

Each job is recorded when it is created and again at each status change (so also
when it concludes), as the detailed JobInfo of :mod:`qjobd.jobs.details`, one row per
job (its :attr:`~qjobd.jobs.job.Job.key`) in creation order.  The store keeps the
newest :data:`DEFAULT_LIMIT` jobs and deletes older ones as it writes, so the file
never holds more.

Nothing here may stall the event loop or stop a job.  :meth:`JobHistory.record`
only puts the record in a small in-memory map (a job's newer record replaces its
older one) and wakes a writer thread, which writes whatever is pending in one
transaction.  Queries run in a worker thread.  When the file cannot be opened or
written (corrupt, locked by another process, a full disk) the failure is logged once
per distinct reason, the records stay pending (the oldest dropped past the limit)
and the writer tries again a second later; queries then fail with that reason.

At start-up the store marks the jobs it finds unfinished (a previous qjobd was
killed or crashed while they ran) as concluded with :data:`INTERRUPTED_ERROR`.  The
file belongs to one daemon: two daemons sharing it would mark each other's jobs.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import trio

from qjobd.jobs.details import detailed_info
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import Job

__all__ = ["DEFAULT_LIMIT", "INTERRUPTED_ERROR", "HistoryUnavailable", "JobHistory"]

logger = logging.getLogger(__name__)

#: Jobs kept (TrueNAS keeps as many).
DEFAULT_LIMIT: Final = 1000

#: The error of a job that was running when qjobd stopped without concluding it.
INTERRUPTED_ERROR: Final = "qjobd stopped while the job was running"

#: How long one statement waits for a lock another connection holds.
BUSY_SECONDS: Final = 0.5

#: How long the writer waits before it tries a failed write again.
RETRY_SECONDS: Final = 1.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    finished INTEGER NOT NULL
)
"""


class HistoryUnavailable(Exception):
    """The history file cannot be read now; the message says why."""


class JobHistory:
    """The history file and the thread that writes it.

    :param limit: jobs kept at most.
    """

    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT) -> None:
        self.path = path
        self.limit = limit
        #: Why the file could not be used the last time, None after a success.
        self.problem: str | None = None
        #: Job key -> (detailed info as JSON, whether the job is finished).
        self._pending: dict[str, tuple[str, bool]] = {}
        self._pending_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._logged: str | None = None
        #: The previous daemon's unfinished jobs have been marked.
        self._marked = False

    # Section: the event loop's side

    def start(self) -> None:
        """Start the writer thread; it opens the file and marks interrupted jobs."""
        self._thread = threading.Thread(target=self._writer, name="qjobd history",
                                        daemon=True)
        self._thread.start()

    def record(self, job: Job) -> None:
        """Keep ``job`` as it is now (never waits).

        A job dropped before it ran (``null`` without ``concluded``) is recorded as
        such; the ``null`` after ``concluded`` changes nothing worth a write.
        """
        if job.status == JobStatus.NULL and job.finished_at is not None:
            return
        text = json.dumps(detailed_info(job), separators=(",", ":"))
        finished = job.status in (JobStatus.CONCLUDED, JobStatus.NULL)
        with self._pending_lock:
            pending = self._pending
            pending[job.key] = (text, finished)
            while len(pending) > self.limit:
                del pending[next(iter(pending))]
        self._wake.set()

    async def query(self) -> list[tuple[str, dict[str, Any]]]:
        """Every job kept, newest first, as (key, detailed JobInfo).

        :raise HistoryUnavailable: the file cannot be read (the reason).
        """
        return await trio.to_thread.run_sync(self._read, abandon_on_cancel=True)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is pending (waiting at most ``timeout``) and stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # Section: the writer thread

    def _writer(self) -> None:
        while True:
            self._wake.clear()
            self._guarded(self._flush)
            if self._stopping:
                break  # what could not be written now is lost
            # A file that does not work is tried again now and then.
            self._wake.wait(RETRY_SECONDS if self._pending or self._db is None else None)
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _guarded(self, work: Callable[[], None]) -> bool:
        """Run ``work`` with the connection; log a failure once, keep the daemon going."""
        try:
            with self._db_lock:
                work()
        except (sqlite3.Error, OSError, ValueError) as error:
            reason = str(error) or type(error).__name__
            self.problem = reason
            if reason != self._logged:
                logger.warning("job history %s: %s", self.path, reason)
                self._logged = reason
            with self._db_lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None
            return False
        if self._logged is not None:
            logger.info("job history %s works again", self.path)
        self.problem = self._logged = None
        return True

    def _connection(self) -> sqlite3.Connection:
        """The open connection (the db lock held), opening and preparing the file."""
        if self._db is not None:
            return self._db
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Private like the socket: the arguments of jobs name files.  (SQLite gives
        # its journal files the database's mode.)
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, check_same_thread=False,
                             isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(_SCHEMA)
            if not self._marked:
                self._mark_interrupted(db)
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db
        self._marked = True
        return db

    def _mark_interrupted(self, db: sqlite3.Connection) -> None:
        """Jobs a previous daemon left unfinished: concluded, with the reason."""
        rows = db.execute("SELECT key, info FROM jobs WHERE finished = 0").fetchall()
        for key, text in rows:
            info = json.loads(text)
            info["status"] = JobStatus.CONCLUDED.value
            info["error"] = INTERRUPTED_ERROR
            info["progress-description"] = f"Failed: {INTERRUPTED_ERROR}"
            info["rate"] = 0
            info.pop("expected-end", None)
            db.execute("UPDATE jobs SET info = ?, finished = 1 WHERE key = ?",
                       (json.dumps(info, separators=(",", ":")), key))
        if rows:
            logger.warning("job history: %d job(s) were running when qjobd stopped",
                           len(rows))

    def _flush(self) -> None:
        db = self._connection()
        with self._pending_lock:
            pending = dict(self._pending)
        if not pending:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for key, (text, finished) in pending.items():
                db.execute(
                    "INSERT INTO jobs (key, info, finished) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET info = excluded.info, "
                    "finished = excluded.finished", (key, text, int(finished)))
            db.execute(
                "DELETE FROM jobs WHERE rowid <= "
                "(SELECT rowid FROM jobs ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                (self.limit,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        with self._pending_lock:
            for key, record in pending.items():
                if self._pending.get(key) is record:
                    del self._pending[key]

    # Section: queries (a worker thread)

    def _read(self) -> list[tuple[str, dict[str, Any]]]:
        rows: list[tuple[str, str]] = []

        def read() -> None:
            self._flush()
            assert self._db is not None
            rows.extend(self._db.execute(
                "SELECT key, info FROM jobs ORDER BY rowid DESC").fetchall())

        if not self._guarded(read):
            raise HistoryUnavailable(self.problem or "unknown error")
        return [(key, json.loads(text)) for key, text in rows]

"""A job: one background operation following QEMU's job life cycle.

A :class:`Job` owns its state: status, flags, progress, error.  Every change goes
through one of its methods, and every status change through :meth:`Job._transition`,
which checks QEMU's table (:mod:`qjobd.jobs.fsm`) and emits ``JOB_STATUS_CHANGE``.

Three parties drive a job.  Its own trio task runs the :class:`JobDriver` (the
data-moving part, in :mod:`qjobd.jobdrivers`) and then tells its
:class:`JobOwner` that the work is over.  QMP handlers call the ``user_*`` verbs,
which change flags and wake the task; they never run driver code themselves.  Its
:class:`~qjobd.jobs.transaction.Transaction` walks it through completion
(waiting, pending, finalization) with the ``enter_*``/``finalize``/``dismiss``
methods.  The job knows neither the manager nor its transaction: it talks to the
owner and to an :class:`~qjobd.jobs.events.EventSink`.

Drivers cooperate at *pause points*: between chunks they call
:meth:`Job.pause_point` (or :meth:`Job.rate_limit`, which sleeps as the speed
demands and then passes a pause point).  That is where a paused job parks
(``paused``, or ``standby`` when ``ready``), where a force-cancelled job stops (its
cancel scope raises ``trio.Cancelled``), and where a new speed takes effect.  Blocking
I/O runs in worker threads through :meth:`Job.run_io` and is never abandoned half way,
so a cancelled job leaves whole chunks behind.

Flags, as in QEMU: ``pause_count`` counts pause requests (internal ones nest), the
user's pause is the ``user_paused`` flag on top.  ``cancel_requested`` says a cancel
arrived; with ``cancel_forced`` too (:attr:`Job.is_force_cancelled`) the job must end
with an error, while a cancel request alone (a soft cancel of a ready mirror) asks it
to finish without completing its work.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any, ClassVar, Protocol, TypeVar

import attrs
import trio

from qjobd.errors import QJobdError, QMPError
from qjobd.jobs.events import EventSink
from qjobd.jobs.fsm import JobStatus, JobVerb, check_transition, check_verb
from qjobd.jobs.progress import RateMeter
from qjobd.jobs.ratelimit import RateLimiter

__all__ = ["COMPLETED_STATUSES", "Job", "JobDriver", "JobFailed", "JobOrigin", "JobOwner"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses in which the job's work is over (QEMU's job_is_completed).
COMPLETED_STATUSES = frozenset(
    {JobStatus.WAITING, JobStatus.PENDING, JobStatus.ABORTING, JobStatus.CONCLUDED,
     JobStatus.NULL}
)

#: What a job that ended for a forced cancel reports (QEMU's ECANCELED text).
CANCELED_ERROR = "Operation canceled"


class JobFailed(QJobdError):
    """A driver's way to end its job with an error message (JobInfo.error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@attrs.frozen
class JobOrigin:
    """Who started a job and how: what detailed job information reports."""

    #: The ``id`` of the QMP request that created the job (None without one).
    request_id: Any = None
    #: The user id of the client, from its socket; None when not known.
    uid: int | None = None
    #: The command that created the job and its arguments as sent.
    command: str | None = None
    arguments: dict[str, Any] | None = None


class JobOwner(Protocol):
    """Who a job reports to: the manager, which keeps jobs and their transactions."""

    def job_changed(self, job: Job) -> None:
        """The job entered a new status (already in :attr:`Job.status_history`)."""

    def job_finished(self, job: Job) -> None:
        """The job's driver returned (or never ran): complete it with its transaction."""

    def job_dismissed(self, job: Job) -> None:
        """The job reached ``null``: forget it."""


class JobDriver:
    """What one kind of job does; QEMU's JobDriver callbacks.

    Subclasses set :attr:`job_type` and implement :meth:`run`.  The other hooks are
    optional; each says when it is called.
    """

    #: The JobType value (``backup``, ``mirror``, ``create``...).
    job_type: ClassVar[str] = ""
    #: Block jobs are also visible to the block-job-* commands and send BLOCK_JOB_*.
    is_block_job: ClassVar[bool] = True
    #: What the progress counts: "bytes" for the jobs that copy data, "steps" for
    #: the others (0 of 1 until done); descriptions of the progress say it so.
    progress_unit: ClassVar[str] = "bytes"
    #: Finish (waiting/aborting...) only after the command that woke the job has
    #: replied, as QEMU does when nothing drains the job from within the command:
    #: its exit runs from a bottom half (mirror after complete or cancel).
    defer_exit: ClassVar[bool] = False

    async def run(self, job: Job) -> None:
        """Do the work; return on success, raise :class:`JobFailed` or OSError on error."""
        raise NotImplementedError

    def complete(self, job: Job) -> None:
        """``job-complete`` in ready/standby; by default jobs cannot be completed."""
        raise QMPError(f"The active block job '{job.id}' cannot be completed")

    def cancel(self, job: Job, force: bool) -> bool:
        """A cancel request; returns whether it must be treated as forced."""
        return True

    def prepare(self, job: Job) -> None:
        """Before commit, for every job of a successful transaction; may raise JobFailed."""

    def commit(self, job: Job) -> None:
        """The job (and its transaction) succeeded: make the result visible."""

    def abort(self, job: Job) -> None:
        """The job or its transaction failed or was cancelled: undo what is visible."""

    def clean(self, job: Job) -> None:
        """After commit or abort: release nodes, permissions, files."""

    def set_speed(self, job: Job, speed: int) -> None:
        """The speed changed (the job's rate limiter is already updated)."""


class Job:
    """One job: its status, flags, progress, and the task that runs it."""

    def __init__(
        self,
        owner: JobOwner,
        events: EventSink,
        job_id: str,
        driver: JobDriver,
        *,
        auto_finalize: bool = True,
        auto_dismiss: bool = True,
        speed: int = 0,
        origin: JobOrigin | None = None,
    ) -> None:
        self._owner = owner
        self.events = events
        self.id = job_id
        self.driver = driver
        self.auto_finalize = auto_finalize
        self.auto_dismiss = auto_dismiss
        self.origin = origin or JobOrigin()
        #: Tells this job from any other, past or future, with the same id (history).
        self.key = uuid.uuid4().hex
        self.status = JobStatus.UNDEFINED
        #: Every status entered and when (wall-clock seconds), oldest first.
        self.status_history: list[tuple[JobStatus, float]] = []
        #: Progress in bytes (or steps): current-progress / total-progress.
        self.progress_current = 0
        self.progress_total = 0
        #: False until the driver has said how much work there is.
        self.progress_known = False
        self.meter = RateMeter(time.monotonic())
        #: Why the job failed (also "Operation canceled"), None while it has not.
        self.error: str | None = None
        self.failed = False
        self.speed = speed
        self.limiter = RateLimiter(speed)
        self.io_status = "ok"
        self.pause_count = 1  # created jobs are paused until started, as in QEMU
        self.user_paused = False
        self.paused = False
        self.busy = False
        self.cancel_requested = False
        self.cancel_forced = False
        #: True once the driver's run() is over or can no longer start (QEMU's
        #: deferred_to_main_loop): what is left is completion.
        self.run_finished = False
        self.started = False
        #: Wall-clock times of creation, start (running) and conclusion.
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        #: Called after every status change (x-job-wait).
        self._watchers: list[Callable[[Job], None]] = []
        self._scope = trio.CancelScope()
        self._kick = trio.Event()
        self._settled = trio.Event()

    def __repr__(self) -> str:
        return f"<Job {self.id!r} {self.driver.job_type} {self.status.value}>"

    @property
    def type(self) -> str:
        return self.driver.job_type

    @property
    def is_block_job(self) -> bool:
        return self.driver.is_block_job

    @property
    def request_id(self) -> Any:
        """The ``id`` of the QMP request that created the job (None without one)."""
        return self.origin.request_id

    # Section: status

    def _transition(self, status: JobStatus) -> None:
        """Move to ``status``; QEMU's table is asserted and real changes announced."""
        if check_transition(self.status, status):
            self.status = status
            now = time.time()
            self.status_history.append((status, now))
            if status == JobStatus.CONCLUDED:
                self.finished_at = now
            self.events.emit("JOB_STATUS_CHANGE", {"id": self.id, "status": status.value})
            self._owner.job_changed(self)
            for watcher in list(self._watchers):
                watcher(self)

    async def wait_for_status(self, statuses: Collection[JobStatus], seconds: float,
                              capture: Callable[[Job], T]) -> T | None:
        """``capture(self)`` as soon as the job is in one of ``statuses`` (now or
        later); None when ``seconds`` pass first."""
        if self.status in statuses:
            return capture(self)
        found: list[T] = []
        reached = trio.Event()

        def watch(job: Job) -> None:
            if not found and job.status in statuses:
                found.append(capture(job))
                reached.set()

        self._watchers.append(watch)
        try:
            with trio.move_on_after(seconds):
                await reached.wait()
        finally:
            self._watchers.remove(watch)
        return found[0] if found else None

    def check_verb(self, verb: JobVerb) -> None:
        check_verb(self.id, self.status, verb)

    @property
    def is_completed(self) -> bool:
        return self.status in COMPLETED_STATUSES

    @property
    def is_ready(self) -> bool:
        return self.status in (JobStatus.READY, JobStatus.STANDBY)

    @property
    def is_force_cancelled(self) -> bool:
        """Cancelled for real (QEMU's job_is_cancelled): the job must end with an error."""
        return self.cancel_requested and self.cancel_forced

    # Section: progress

    def progress_update(self, done: int) -> None:
        self.progress_current += done
        self.meter.update(self.progress_current, time.monotonic())

    def progress_set_remaining(self, remaining: int) -> None:
        self.progress_total = self.progress_current + remaining
        self.progress_known = True

    @property
    def rate(self) -> int:
        """Progress per second over the last few seconds; 0 once the work is over."""
        if self.is_completed:
            return 0
        return self.meter.rate(time.monotonic())

    # Section: used by drivers inside run()

    async def pause_point(self) -> None:
        """Stop here while paused; raises trio.Cancelled once force-cancelled."""
        await trio.lowlevel.checkpoint()
        if self.pause_count <= 0 or self.is_force_cancelled:
            return
        previous = self.status
        self._transition(JobStatus.STANDBY if previous == JobStatus.READY else JobStatus.PAUSED)
        self.paused = True
        try:
            while self.pause_count > 0 and not self.is_force_cancelled:
                await self._wait_for_kick()
        finally:
            self.paused = False
            self._transition(previous)

    async def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a verb (pause, cancel, new speed) cuts it short."""
        if seconds > 0 and not self.is_force_cancelled and self.pause_count <= 0:
            with trio.move_on_after(seconds):
                await self._wait_for_kick()
        await self.pause_point()

    async def rate_limit(self, nbytes: int) -> None:
        """Account for ``nbytes`` moved and wait as long as the speed requires."""
        self.limiter.processed(nbytes, trio.current_time())
        while True:
            delay = self.limiter.delay(trio.current_time())
            await self.sleep(delay)
            if not delay or self.is_force_cancelled:
                return

    async def yield_until_kicked(self) -> None:
        """Idle until a verb or :meth:`kick` wakes the job (a ready mirror waits so)."""
        if not self.is_force_cancelled and self.pause_count <= 0:
            await self._wait_for_kick()
        await self.pause_point()

    async def run_io(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking I/O in a worker thread; the job counts as busy meanwhile."""
        self.busy = True
        self._settled.set()  # parked in a thread: verbs take effect afterwards
        try:
            return await trio.to_thread.run_sync(function, *args)
        finally:
            self.busy = False

    def transition_to_ready(self) -> None:
        """The job converged (mirror): announce it and wait for complete or cancel."""
        self._transition(JobStatus.READY)
        if self.is_block_job:
            self.events.emit("BLOCK_JOB_READY", self.block_event_data())

    def io_error(self, operation: str, action: str, error_number: int) -> None:
        """Report an I/O error as QEMU's block_job_error_action does."""
        self.events.emit(
            "BLOCK_JOB_ERROR", {"device": self.id, "operation": operation, "action": action}
        )
        if action == "stop":
            if not self.user_paused:
                self.pause()
                self.user_paused = True
            if self.io_status == "ok":
                self.io_status = "nospace" if error_number == errno.ENOSPC else "failed"

    def kick(self) -> None:
        """Wake the job's task if it is waiting at a pause point or sleeping."""
        if self._settled.is_set():
            # A verb still waiting in settle() keeps its event: the job sets it the
            # next time it settles, whoever kicked it meanwhile.
            self._settled = trio.Event()
        self._kick.set()
        self._kick = trio.Event()

    async def _wait_for_kick(self) -> None:
        kick = self._kick
        self._settled.set()
        await kick.wait()

    # Section: the job's own task

    def enter_created(self) -> None:
        """Registered with the manager, not started yet."""
        self._transition(JobStatus.CREATED)

    def mark_started(self) -> None:
        """The manager is about to run :meth:`main` (QEMU's job_start)."""
        assert not self.started
        self.started = True
        self.started_at = time.time()
        self.pause_count -= 1
        self._transition(JobStatus.RUNNING)

    async def main(self) -> None:
        """The job's task: run the driver, then complete (QEMU's job_co_entry/job_exit)."""
        failure: str | None = None
        with self._scope:
            try:
                await self.pause_point()
                await self.driver.run(self)
            except JobFailed as error:
                failure = error.message
            except OSError as error:
                failure = os.strerror(error.errno) if error.errno else str(error)
            except QMPError as error:
                failure = error.desc
            except Exception as error:
                logger.exception("job %s failed unexpectedly", self.id)
                failure = f"internal error: {error!r}"
        if failure is not None:
            self._fail(failure)
        self.run_finished = True
        self.busy = False
        if self.driver.defer_exit:
            # A handler woken by _settled runs in the scheduler's next pass and
            # queues its reply without waiting; complete after that pass.
            self._settled.set()
            with trio.CancelScope(shield=True):
                await trio.lowlevel.checkpoint()
                await trio.lowlevel.checkpoint()
        self._owner.job_finished(self)
        self._settled.set()

    def _fail(self, message: str) -> None:
        self.failed = True
        self.error = message

    # Section: user verbs that only concern this job (QMP handlers call these)

    async def settle(self) -> None:
        """Give a woken job the chance to react before the command replies.

        QEMU runs a sleeping job right away when a verb wakes it, so the events that
        follow (``paused``, ``aborting``...) precede the command's reply.  A job busy
        in a worker thread reacts later, as in QEMU.
        """
        if not self.busy and not self.run_finished:
            with trio.move_on_after(1.0):
                await self._settled.wait()

    def user_pause(self) -> None:
        self.check_verb(JobVerb.PAUSE)
        if self.user_paused:
            raise QMPError("Job is already paused")
        self.user_paused = True
        self.pause()

    def user_resume(self) -> None:
        if not self.user_paused or self.pause_count <= 0:
            raise QMPError("Can't resume a job that was not paused")
        self.check_verb(JobVerb.RESUME)
        self.user_paused = False
        self.io_status = "ok"
        self.resume()

    def pause(self) -> None:
        """An internal pause request (they nest)."""
        self.pause_count += 1
        if not self.paused:
            self.kick()

    def resume(self) -> None:
        assert self.pause_count > 0
        self.pause_count -= 1
        if self.pause_count == 0:
            self.kick()

    def user_set_speed(self, speed: int) -> None:
        self.check_verb(JobVerb.SET_SPEED)
        if speed < 0:
            raise QMPError("Parameter 'speed' expects a non-negative value")
        old = self.speed
        self.speed = speed
        self.limiter.set_speed(speed)
        self.driver.set_speed(self, speed)
        if not (speed and speed <= old):
            self.kick()  # faster (or unlimited): stop sleeping at the old rate

    def user_complete(self) -> None:
        self.check_verb(JobVerb.COMPLETE)
        if self.cancel_requested:
            raise QMPError(f"The active block job '{self.id}' cannot be completed")
        self.driver.complete(self)

    # Section: cancellation and completion (the manager and the transaction call these)

    def cancel_async(self, force: bool) -> None:
        """Mark the job cancelled and make its task notice (QEMU's job_cancel_async)."""
        force = self.driver.cancel(self, force)
        if self.user_paused:
            self.user_paused = False
            assert self.pause_count > 0
            self.pause_count -= 1
        if force or not self.run_finished:
            self.cancel_requested = True
            self.cancel_forced |= force
        if self.is_force_cancelled:
            self._scope.cancel()
        self.kick()

    def finish_unstarted(self) -> None:
        """A job that never started (its transaction failed) has no run to wait for."""
        assert not self.started
        self.run_finished = True

    def settle_result(self) -> None:
        """QEMU's job_update_rc: a forced cancel is a failure; failures go aborting."""
        if not self.failed and self.is_force_cancelled:
            self._fail(CANCELED_ERROR)
        if self.failed:
            self._transition(JobStatus.ABORTING)

    def enter_waiting(self) -> None:
        """Done and successful; the other members of the transaction may not be."""
        self._transition(JobStatus.WAITING)

    def enter_pending(self) -> None:
        """Every member is done: waiting for finalization (automatic or the client's)."""
        self._transition(JobStatus.PENDING)
        if not self.auto_finalize and self.is_block_job:
            self.events.emit("BLOCK_JOB_PENDING", {"type": self.type, "id": self.id})

    def prepare(self) -> bool:
        """Run the driver's prepare (QEMU's job_prepare); False when the job failed."""
        if self.failed:
            return False
        try:
            self.driver.prepare(self)
        except JobFailed as error:
            self._fail(error.message)
            self.settle_result()
            return False
        return True

    def finalize(self) -> None:
        """Commit or abort, clean up, announce the outcome, conclude (job_finalize_single).

        A job that was never started was never announced either: it goes straight to
        ``null`` after ``concluded``.
        """
        assert self.is_completed
        self.settle_result()
        try:
            if self.failed:
                self.driver.abort(self)
            else:
                self.driver.commit(self)
        except Exception:
            logger.exception("job %s: %s failed", self.id, "abort" if self.failed else "commit")
        try:
            self.driver.clean(self)
        except Exception:
            logger.exception("job %s: clean failed", self.id)
        if self.started and self.is_block_job:
            if self.is_force_cancelled:
                self.events.emit("BLOCK_JOB_CANCELLED", self.block_event_data())
            else:
                data = self.block_event_data()
                if self.failed and self.error is not None:
                    data["error"] = self.error
                self.events.emit("BLOCK_JOB_COMPLETED", data)
        self._transition(JobStatus.CONCLUDED)
        if self.auto_dismiss or not self.started:
            self.dismiss()

    def dismiss(self) -> None:
        """Go to ``null`` and be forgotten (QEMU's job_do_dismiss)."""
        self.busy = False
        self.paused = False
        self.run_finished = True
        self._transition(JobStatus.NULL)
        self._owner.job_dismissed(self)

    # Section: what queries and events show

    def info(self) -> dict[str, Any]:
        """JobInfo, as query-jobs shows it."""
        result: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "status": self.status.value,
            "current-progress": self.progress_current,
            "total-progress": self.progress_total,
        }
        if self.error is not None:
            result["error"] = self.error
        return result

    def block_info(self) -> dict[str, Any]:
        """BlockJobInfo, as query-block-jobs shows it."""
        result: dict[str, Any] = {
            "type": self.type,
            "device": self.id,
            "len": self.progress_total,
            "offset": self.progress_current,
            "busy": self.busy,
            "paused": self.pause_count > 0,
            "speed": self.speed,
            "io-status": self.io_status,
            "ready": self.is_ready,
            "status": self.status.value,
            "auto-finalize": self.auto_finalize,
            "auto-dismiss": self.auto_dismiss,
        }
        if self.error is not None:
            result["error"] = self.error
        return result

    def block_event_data(self) -> dict[str, Any]:
        """The members BLOCK_JOB_COMPLETED, _CANCELLED and _READY share."""
        return {
            "type": self.type,
            "device": self.id,
            "len": self.progress_total,
            "offset": self.progress_current,
            "speed": self.speed,
        }

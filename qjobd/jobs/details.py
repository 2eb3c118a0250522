"""What qjobd tells about a job beyond QEMU's JobInfo: the one place that builds it.

``query-jobs`` with details, ``x-job-wait``, ``x-query-job-history``, the history
store and ``JOB_PROGRESS`` all describe a job through these functions, so they
always agree.  Everything here reads the job and changes nothing; times are
wall-clock, in QMP's ``{"seconds", "microseconds"}`` shape.
"""

from __future__ import annotations

import time
from typing import Any

from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import CANCELED_ERROR, Job

__all__ = ["describe", "detailed_info", "human_size", "progress_event", "timestamp"]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def timestamp(seconds: float) -> dict[str, int]:
    """``seconds`` since the epoch as an XJobTimestamp."""
    whole = int(seconds)
    return {"seconds": whole, "microseconds": int((seconds - whole) * 1e6)}


def human_size(size: int) -> str:
    """``size`` bytes for people, in binary units: "512 MiB", "1.5 GiB", "17 B"."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable")


def _amount(job: Job) -> str:
    """How far the job got: "512 MiB of 1 GiB", "0 of 1 steps"."""
    current, total = job.progress_current, job.progress_total
    if job.driver.progress_unit == "bytes":
        return f"{human_size(current)} of {human_size(total)}"
    return f"{current} of {total} {job.driver.progress_unit}"


def describe(job: Job) -> str:
    """What the job is doing now, in a short sentence (progress-description)."""
    status = job.status
    copying = job.driver.progress_unit == "bytes"
    if status == JobStatus.CREATED:
        return "Created, not started yet"
    if status == JobStatus.RUNNING:
        if not job.progress_known:
            return "Measuring the work to do"
        return f"Copied {_amount(job)}" if copying else f"Done {_amount(job)}"
    if status == JobStatus.PAUSED:
        return f"Paused after {_amount(job)}"
    if status == JobStatus.READY:
        return ("In sync with its source; waiting for job-complete or job-cancel "
                f"({human_size(job.progress_current)} copied)")
    if status == JobStatus.STANDBY:
        return "Paused while in sync with its source"
    if status == JobStatus.WAITING:
        return "Waiting for the other jobs of the transaction"
    if status == JobStatus.PENDING:
        return "Applying its changes" if job.auto_finalize else "Waiting for job-finalize"
    if status == JobStatus.ABORTING:
        if job.is_force_cancelled and job.error in (None, CANCELED_ERROR):
            return "Cancelling"
        return f"Failing: {job.error}"
    if status in (JobStatus.CONCLUDED, JobStatus.NULL):
        if job.failed:
            if job.is_force_cancelled and job.error == CANCELED_ERROR:
                return "Cancelled"
            return f"Failed: {job.error}"
        if copying:
            return f"Finished: copied {human_size(job.progress_current)}"
        return "Finished"
    return str(status.value)


def expected_end(job: Job, rate: int, now: float) -> float | None:
    """When the job's work should be done at ``rate``; None when it cannot be told."""
    if job.status != JobStatus.RUNNING or not job.progress_known or rate <= 0:
        return None
    left = job.progress_total - job.progress_current
    if left <= 0:
        return None
    return now + left / rate


def detailed_info(job: Job) -> dict[str, Any]:
    """JobInfo with qjobd's own members (JSON-ready, the schema's member names)."""
    now = time.time()
    rate = job.rate
    info = job.info()
    origin = job.origin
    info["progress-description"] = describe(job)
    info["time-created"] = timestamp(job.created_at)
    if job.started_at is not None:
        info["time-started"] = timestamp(job.started_at)
    if job.finished_at is not None:
        info["time-finished"] = timestamp(job.finished_at)
    if origin.request_id is not None:
        info["started-by"] = origin.request_id
    if origin.uid is not None:
        info["started-by-uid"] = origin.uid
    if origin.command is not None:
        info["command"] = origin.command
        info["arguments"] = origin.arguments if origin.arguments is not None else {}
    info["speed"] = job.speed
    info["rate"] = rate
    end = expected_end(job, rate, now)
    if end is not None:
        info["expected-end"] = timestamp(end)
    info["progress-valid"] = job.progress_known
    info["status-history"] = [
        {"status": status.value, "time": timestamp(when)} for status, when in job.status_history
    ]
    return info


def progress_event(job: Job) -> dict[str, Any]:
    """The data of a JOB_PROGRESS event about ``job``."""
    data: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "status": job.status.value,
        "current": job.progress_current,
        "total": job.progress_total,
        "description": describe(job),
        "rate": job.rate,
    }
    if job.error is not None:
        data["error"] = job.error
    return data

"""Handlers of schema/job.json: the generic job-* verbs, query-jobs, and qjobd's
own job commands (x-job-wait, x-query-job-history)."""

from __future__ import annotations

from typing import Any

from qjobd.commands.arguments import value
from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobs.details import detailed_info
from qjobd.jobs.filters import compile_filters
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.history import HistoryUnavailable
from qjobd.jobs.job import Job

#: The members of QEMU's JobInfo (what query-jobs shows without details).
PLAIN_MEMBERS = ("id", "type", "status", "current-progress", "total-progress", "error")


def find_job(context: CommandContext, job_id: str) -> Job:
    """The job called ``job_id``, or QEMU's error for job-* commands."""
    job = context.services.jobs.find(job_id)
    if job is None:
        raise QMPError("Job not found")
    return job


@handler("job-pause")
async def job_pause(context: CommandContext, arguments: Any) -> None:
    job = find_job(context, arguments.id)
    job.user_pause()
    await job.settle()


@handler("job-resume")
async def job_resume(context: CommandContext, arguments: Any) -> None:
    job = find_job(context, arguments.id)
    job.user_resume()
    await job.settle()


@handler("job-cancel")
async def job_cancel(context: CommandContext, arguments: Any) -> None:
    job = find_job(context, arguments.id)
    context.services.jobs.user_cancel(job, force=True)
    await job.settle()


@handler("job-complete")
async def job_complete(context: CommandContext, arguments: Any) -> None:
    job = find_job(context, arguments.id)
    job.user_complete()


@handler("job-dismiss")
async def job_dismiss(context: CommandContext, arguments: Any) -> None:
    context.services.jobs.user_dismiss(find_job(context, arguments.id))


@handler("job-finalize")
async def job_finalize(context: CommandContext, arguments: Any) -> None:
    context.services.jobs.user_finalize(find_job(context, arguments.id))


def _enums(context: CommandContext) -> dict[str, list[str]]:
    model = context.services.model
    return {field: [member.value for member in model.enum(name)]
            for field, name in (("type", "JobType"), ("status", "JobStatus"))}


@handler("query-jobs")
async def query_jobs(context: CommandContext, arguments: Any) -> Any:
    jobs = context.services.jobs.newest_first()
    model = context.services.model
    filters = arguments.filters
    details = arguments.details
    if filters is None and not details:
        return model.structure("JobInfoList", [job.info() for job in jobs])
    wanted = compile_filters(filters, _enums(context))
    infos = [info for info in map(detailed_info, jobs) if wanted(info)]
    if details is False:
        infos = [{key: info[key] for key in PLAIN_MEMBERS if key in info} for info in infos]
    return model.structure("JobInfoList", infos)


async def _concluded_in_history(context: CommandContext, job_id: str) -> Any:
    """The newest concluded job called ``job_id`` in the history, or None."""
    history = context.services.history
    if history is None:
        return None
    try:
        rows = await history.query()
    except HistoryUnavailable:
        return None
    for _key, info in rows:
        if info["id"] == job_id:
            return info if info["status"] == JobStatus.CONCLUDED.value else None
    return None


@handler("x-job-wait")
async def x_job_wait(context: CommandContext, arguments: Any) -> Any:
    timeout = arguments.timeout
    if timeout < 0:
        raise QMPError("Parameter 'timeout' expects a non-negative value")
    if arguments.statuses is None:
        statuses = {JobStatus.CONCLUDED, JobStatus.NULL}
    else:
        statuses = {JobStatus(value(status)) for status in arguments.statuses}
    job = context.services.jobs.find(arguments.id)
    if job is None:
        # A job that concluded and went away just before the wait began.
        if JobStatus.CONCLUDED in statuses:
            info = await _concluded_in_history(context, arguments.id)
            if info is not None:
                return context.services.model.structure("JobInfo", info)
        raise QMPError("Job not found")
    info = await job.wait_for_status(statuses, timeout, detailed_info)
    if info is None:
        names = ", ".join(sorted(status.value for status in statuses))
        raise QMPError(f"Timed out after {timeout:g} seconds waiting for job "
                       f"'{job.id}' to reach status {names}")
    return context.services.model.structure("JobInfo", info)


@handler("x-query-job-history")
async def x_query_job_history(context: CommandContext, arguments: Any) -> Any:
    services = context.services
    limit = arguments.limit
    if limit is not None and limit < 0:
        raise QMPError("Parameter 'limit' expects a non-negative value")
    wanted = compile_filters(arguments.filters, _enums(context))
    if services.history is None:
        raise QMPError("Job history is not available: qjobd keeps none")
    try:
        rows = await services.history.query()
    except HistoryUnavailable as error:
        raise QMPError(f"Job history is not available: {error}") from None
    # Jobs that still exist are shown as they are now, not as last written.
    live = {job.key: job for job in services.jobs.jobs.values()}
    infos: list[dict[str, Any]] = []
    for key, info in rows:
        if limit is not None and len(infos) >= limit:
            break
        job = live.get(key)
        if job is not None:
            info = detailed_info(job)
        if wanted(info):
            infos.append(info)
    return services.model.structure("JobInfoList", infos)

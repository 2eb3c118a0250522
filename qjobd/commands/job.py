"""Handlers of schema/job.json: the generic job-* verbs and query-jobs."""

from __future__ import annotations

from typing import Any

from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import QMPError
from qjobd.jobs.job import Job


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


@handler("query-jobs")
async def query_jobs(context: CommandContext, arguments: Any) -> Any:
    jobs = context.services.jobs.newest_first()
    return context.services.model.structure("JobInfoList", [job.info() for job in jobs])

"""Handlers of the block-job-* family in schema/block-core.json.

These address a job by ``device`` (its id) and answer unknown ids with the
DeviceNotActive class, as QEMU does, unlike the job-* family.  Jobs that are not
block jobs (``create``) are invisible to them.
"""

from __future__ import annotations

from typing import Any

from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.errors import DeviceNotActive, QMPError
from qjobd.jobs.job import Job


def find_block_job(context: CommandContext, device: str) -> Job:
    job = context.services.jobs.find(device)
    if job is None or not job.is_block_job:
        raise DeviceNotActive(f"Block job '{device}' not found")
    return job


@handler("block-job-set-speed")
async def block_job_set_speed(context: CommandContext, arguments: Any) -> None:
    find_block_job(context, arguments.device).user_set_speed(arguments.speed)


@handler("block-job-cancel")
async def block_job_cancel(context: CommandContext, arguments: Any) -> None:
    job = find_block_job(context, arguments.device)
    force = bool(arguments.force)
    if job.user_paused and not force:
        raise QMPError(f"The block job for device '{arguments.device}' is currently paused")
    context.services.jobs.user_cancel(job, force=force)
    await job.settle()


@handler("block-job-pause")
async def block_job_pause(context: CommandContext, arguments: Any) -> None:
    job = find_block_job(context, arguments.device)
    job.user_pause()
    await job.settle()


@handler("block-job-resume")
async def block_job_resume(context: CommandContext, arguments: Any) -> None:
    job = find_block_job(context, arguments.device)
    job.user_resume()
    await job.settle()


@handler("block-job-complete")
async def block_job_complete(context: CommandContext, arguments: Any) -> None:
    find_block_job(context, arguments.device).user_complete()


@handler("block-job-dismiss")
async def block_job_dismiss(context: CommandContext, arguments: Any) -> None:
    context.services.jobs.user_dismiss(find_block_job(context, arguments.id))


@handler("block-job-finalize")
async def block_job_finalize(context: CommandContext, arguments: Any) -> None:
    context.services.jobs.user_finalize(find_block_job(context, arguments.id))


@handler("query-block-jobs")
async def query_block_jobs(context: CommandContext, arguments: Any) -> Any:
    jobs = [job.block_info() for job in context.services.jobs.newest_first()
            if job.is_block_job]
    return context.services.model.structure("BlockJobInfoList", jobs)

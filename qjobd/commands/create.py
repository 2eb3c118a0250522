"""Handler of blockdev-create (schema/block-core.json).

The format registry says what creating an image of each driver means
(:meth:`qjobd.block.formats.FormatRegistry.blockdev_creation`); the ``create`` job
(:mod:`qjobd.jobdrivers.create`) runs it.
"""

from __future__ import annotations

from typing import Any

from qjobd.commands.context import CommandContext
from qjobd.commands.registry import handler
from qjobd.jobdrivers.create import CreateDriver


@handler("blockdev-create")
async def blockdev_create(context: CommandContext, arguments: Any) -> None:
    services = context.services
    options = arguments.options
    creation = services.formats.blockdev_creation(options.driver.value, options.u)
    job = services.jobs.create(arguments.job_id, CreateDriver(creation), auto_dismiss=False,
                               request_id=context.request_id)
    services.jobs.start(job)
    await job.settle()

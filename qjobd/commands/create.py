"""Handler of blockdev-create (schema/block-core.json).

The format registry says what creating an image of each driver means
(:meth:`qjobd.block.formats.FormatRegistry.blockdev_creation`); the ``create`` job
(:mod:`qjobd.jobdrivers.create`) runs it.
"""

from __future__ import annotations

from typing import Any

import attrs

from qjobd.block.node import BlockNode
from qjobd.commands.context import CommandContext, Services
from qjobd.commands.registry import handler
from qjobd.jobdrivers.create import CreateDriver


@attrs.frozen
class _NodeRefs:
    """BlockdevRefs as the model gives them (a name or an options object) opened in
    the graph, for the creation to write through."""

    services: Services

    def open_ref(self, ref: Any) -> BlockNode:
        if not isinstance(ref, str):
            ref = self.services.model.unstructure("BlockdevOptions", ref)
        return self.services.block.open_ref(ref)

    def release_implicit(self, node: BlockNode) -> None:
        self.services.block.release_implicit(node)


@handler("blockdev-create")
async def blockdev_create(context: CommandContext, arguments: Any) -> None:
    services = context.services
    options = arguments.options
    creation = services.formats.blockdev_creation(options.driver.value, options.u,
                                                  _NodeRefs(services))
    job = services.jobs.create(arguments.job_id, CreateDriver(creation), auto_dismiss=False,
                               origin=context.origin)
    services.jobs.start(job)
    await job.settle()

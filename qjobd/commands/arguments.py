"""Reading the model's argument objects: optional members with QEMU's defaults.

Handlers turn arguments into the option records of the job drivers here, so the
drivers never see model objects and every block job reads the options all of them
share (id, speed, finalize/dismiss, error policies) the same way.
"""

from __future__ import annotations

from typing import Any

import attrs

from qjobd.commands.context import CommandContext
from qjobd.jobdrivers.blockjob import BlockJobOptions

__all__ = ["block_job_options", "one_policy_options", "value"]


def value(member: Any, default: Any = None) -> Any:
    """An optional member's value, ``default`` when absent; enum members give their
    QAPI name."""
    if member is None:
        return default
    return getattr(member, "value", member)


def block_job_options(context: CommandContext, arguments: Any) -> BlockJobOptions:
    """The members every block job command shares, after QEMU's defaults.

    A member a command does not have (``on-target-error`` of a stream, say) reads as
    absent.
    """

    def member(name: str, default: Any) -> Any:
        return value(getattr(arguments, name, None), default)

    return BlockJobOptions(
        job_id=member("job_id", ""),
        speed=member("speed", 0),
        auto_finalize=bool(member("auto_finalize", True)),
        auto_dismiss=bool(member("auto_dismiss", True)),
        on_source_error=member("on_source_error", "report"),
        on_target_error=member("on_target_error", "report"),
        origin=context.origin,
    )


def one_policy_options(context: CommandContext, arguments: Any) -> BlockJobOptions:
    """The common options of a command with one ``on-error`` for reads and writes
    (block-stream, block-commit)."""
    policy = value(arguments.on_error, "report")
    return attrs.evolve(block_job_options(context, arguments), on_source_error=policy,
                        on_target_error=policy)

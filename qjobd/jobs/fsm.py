"""The job life cycle: which statuses exist, how a job may move, what it accepts.

This module is pure data plus two checks.  It mirrors the state machine of QEMU 7.2's
generic job layer (``job.c``) so that a client driving qjobd sees exactly the statuses,
``JOB_STATUS_CHANGE`` events and refusals it would see from qemu-storage-daemon.

Theory of operation
===================

Every job carries one :class:`JobStatus`.  Two tables govern it:

* :data:`TRANSITIONS` lists, for each status, the statuses the job itself may move to.
  Only the job machinery moves a job, so asking for a move that is not listed is a bug
  in qjobd, never a client mistake: :func:`check_transition` raises
  :class:`AssertionError`.
* :data:`VERBS` lists, for each client-facing :class:`JobVerb`, the statuses in which
  a command using that verb is acceptable.  A command arriving in any other status is
  a client mistake: :func:`check_verb` raises :class:`~qjobd.errors.QMPError` with the
  same text QEMU uses.

How a job moves
---------------

*Birth.*  A freshly allocated job is ``undefined`` for an instant and becomes
``created`` as soon as it is registered.  If setting it up fails before it was ever
started, it is torn down on the spot (``created`` → ``null``).

*Start.*  Starting the job's body moves it ``created`` → ``running``.

*Pausing.*  A pause request (from a client or from inside qjobd) is only a flag; the
body honours it at its next *pause point*, a place where it has no I/O in flight.
There a ``running`` job becomes ``paused`` and a ``ready`` job becomes ``standby``;
once every pause request has been withdrawn the job returns to exactly the status it
left.  A paused job is never cancelled or failed directly: it is woken first, goes back
to ``running``/``ready``, and only then heads for ``aborting``.

*Ready.*  Jobs that can run forever (a mirror keeping a copy in sync) announce
``ready`` once the copy has converged.  They stay there, possibly dipping into
``standby``, until a client sends ``complete`` (or cancels).

*Success.*  When the body returns without error the job goes to ``waiting``, where it
waits for the other members of its transaction to finish as well.  Once all of them
have, each moves to ``pending``: the work is done but the final changes (for instance
swapping a graph node) are not yet applied.  With auto-finalize on (the default) qjobd
applies them immediately; with it off, the job sits in ``pending`` until the client
sends ``finalize``.  Applying them successfully leads to ``concluded``.

*Failure and cancellation.*  A body that fails, a cancelled job, or a transaction in
which some member failed or whose finalisation step failed, goes to ``aborting`` from
``created``, ``running``, ``ready``, ``waiting`` or ``pending``.  The rollback runs there
(a job already aborting may be told to abort again, which is a self-transition and no
real change), after which the job is ``concluded`` with an error recorded.

*The end.*  ``concluded`` means the outcome is final and can be queried.  With
auto-dismiss on (the default), or if the job never started, the job is discarded right
away (``concluded`` → ``null``); with it off, it lingers until the client sends
``dismiss``.  ``null`` is the last status: the job is being freed and accepts nothing.

Events: a ``JOB_STATUS_CHANGE`` is emitted on every transition that really changes the
status; :func:`check_transition` returns whether that is the case.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from qjobd.errors import QMPError

__all__ = [
    "TRANSITIONS",
    "VERBS",
    "JobStatus",
    "JobVerb",
    "accepted_verbs",
    "check_transition",
    "check_verb",
    "mermaid_diagram",
    "transition_allowed",
    "verb_allowed",
    "verb_error_text",
]


class JobStatus(enum.Enum):
    """Where a job is in its life (QAPI ``JobStatus``, same names, same order)."""

    _value_: str

    #: Placeholder of a job that is still being constructed; clients never see it.
    UNDEFINED = "undefined"
    #: Registered and visible, but its body has not been started yet.
    CREATED = "created"
    #: The body is executing and doing its work.
    RUNNING = "running"
    #: Work is suspended at a pause point because someone asked for a pause.
    PAUSED = "paused"
    #: A job that could go on forever has converged and awaits ``complete``.
    READY = "ready"
    #: A ``ready`` job that is suspended at a pause point; the paused twin of ``ready``.
    STANDBY = "standby"
    #: The body finished successfully; the other members of the transaction are awaited.
    WAITING = "waiting"
    #: The whole transaction succeeded; final changes await finalisation.
    PENDING = "pending"
    #: The job failed or was cancelled and is rolling back; it will end with an error.
    ABORTING = "aborting"
    #: The outcome is final and can be queried until the job is dismissed.
    CONCLUDED = "concluded"
    #: The job is being discarded; it is about to disappear from every list.
    NULL = "null"


class JobVerb(enum.Enum):
    """A client-facing action on a job (QAPI ``JobVerb``, same names, same order)."""

    _value_: str

    #: Stop the job before it finishes on its own (``job-cancel``, ``block-job-cancel``).
    CANCEL = "cancel"
    #: Ask the job to suspend at its next pause point (``job-pause``).
    PAUSE = "pause"
    #: Withdraw a client pause request (``job-resume``).
    RESUME = "resume"
    #: Change the job's throughput limit (``block-job-set-speed``).
    SET_SPEED = "set-speed"
    #: Tell a converged, open-ended job to wrap up successfully (``job-complete``).
    COMPLETE = "complete"
    #: Drop a concluded job from the job list (``job-dismiss``).
    DISMISS = "dismiss"
    #: Apply the pending final changes of a transaction (``job-finalize``).
    FINALIZE = "finalize"


_S = JobStatus

#: For each status, the statuses a job in it may move to (QEMU 7.2 ``job.c``).
#: ``aborting`` → ``aborting`` is the only self-transition; ``null`` is final.
TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = MappingProxyType(
    {
        _S.UNDEFINED: frozenset({_S.CREATED}),
        _S.CREATED: frozenset({_S.RUNNING, _S.ABORTING, _S.NULL}),
        _S.RUNNING: frozenset({_S.PAUSED, _S.READY, _S.WAITING, _S.ABORTING}),
        _S.PAUSED: frozenset({_S.RUNNING}),
        _S.READY: frozenset({_S.STANDBY, _S.WAITING, _S.ABORTING}),
        _S.STANDBY: frozenset({_S.READY}),
        _S.WAITING: frozenset({_S.PENDING, _S.ABORTING}),
        _S.PENDING: frozenset({_S.ABORTING, _S.CONCLUDED}),
        _S.ABORTING: frozenset({_S.ABORTING, _S.CONCLUDED}),
        _S.CONCLUDED: frozenset({_S.NULL}),
        _S.NULL: frozenset(),
    }
)

_ADJUSTABLE: Final = frozenset({_S.CREATED, _S.RUNNING, _S.PAUSED, _S.READY, _S.STANDBY})

#: For each verb, the statuses in which a command using it is accepted (QEMU 7.2).
#: Note that ``complete`` is also accepted in ``standby``, not only in ``ready``.
VERBS: Final[Mapping[JobVerb, frozenset[JobStatus]]] = MappingProxyType(
    {
        JobVerb.CANCEL: _ADJUSTABLE | {_S.WAITING, _S.PENDING},
        JobVerb.PAUSE: _ADJUSTABLE,
        JobVerb.RESUME: _ADJUSTABLE,
        JobVerb.SET_SPEED: _ADJUSTABLE,
        JobVerb.COMPLETE: frozenset({_S.READY, _S.STANDBY}),
        JobVerb.DISMISS: frozenset({_S.CONCLUDED}),
        JobVerb.FINALIZE: frozenset({_S.PENDING}),
    }
)

del _S


def transition_allowed(old: JobStatus, new: JobStatus) -> bool:
    """Whether the table lets a job in ``old`` move to ``new``."""
    return new in TRANSITIONS[old]


def verb_allowed(status: JobStatus, verb: JobVerb) -> bool:
    """Whether a job in ``status`` accepts a command using ``verb``."""
    return status in VERBS[verb]


def accepted_verbs(status: JobStatus) -> frozenset[JobVerb]:
    """Every verb a job in ``status`` accepts (handy for docs and introspection)."""
    return frozenset(verb for verb, statuses in VERBS.items() if status in statuses)


def verb_error_text(job_id: str, status: JobStatus, verb: JobVerb) -> str:
    """QEMU's wording for refusing ``verb`` on job ``job_id`` in ``status``."""
    return f"Job '{job_id}' in state '{status.value}' cannot accept command verb '{verb.value}'"


def check_verb(job_id: str, status: JobStatus, verb: JobVerb) -> None:
    """Refuse ``verb`` unless a job in ``status`` accepts it.

    Raises :class:`~qjobd.errors.QMPError` (class ``GenericError``) with QEMU's exact
    text, e.g. ``Job 'j0' in state 'running' cannot accept command verb 'dismiss'``.
    Handlers call this before doing anything else, as QEMU does.
    """
    if not verb_allowed(status, verb):
        raise QMPError(verb_error_text(job_id, status, verb))


def check_transition(old: JobStatus, new: JobStatus) -> bool:
    """Vet a status change about to be made; say whether it is a real change.

    A move missing from :data:`TRANSITIONS` is a bug in qjobd and raises
    :class:`AssertionError` (explicitly, so that it also fires under ``python -O``).
    The return value is ``old != new``: the caller emits ``JOB_STATUS_CHANGE`` only
    when it is true (the one allowed self-transition, ``aborting`` → ``aborting``,
    stays silent).
    """
    if not transition_allowed(old, new):
        raise AssertionError(f"illegal job status transition '{old.value}' -> '{new.value}'")
    return old != new


def _node(status: JobStatus) -> str:
    # Prefixed identifiers: keeps names such as "null" clear of Mermaid keywords.
    return f"st_{status.value}"


def mermaid_diagram(*, with_verbs: bool = True) -> str:
    """A Mermaid ``stateDiagram-v2`` of :data:`TRANSITIONS`, built from the tables.

    With ``with_verbs`` each status that accepts client verbs gets a note listing
    them (from :data:`VERBS`).  Statuses and edges appear in QAPI order, so the
    output is stable and can be checked into the documentation.
    """
    lines = ["stateDiagram-v2"]
    for status in JobStatus:
        lines.append(f'    state "{status.value}" as {_node(status)}')
    lines.append(f"    [*] --> {_node(JobStatus.UNDEFINED)}")
    for old in JobStatus:
        for new in JobStatus:
            if new in TRANSITIONS[old]:
                lines.append(f"    {_node(old)} --> {_node(new)}")
    lines.append(f"    {_node(JobStatus.NULL)} --> [*]")
    if with_verbs:
        for status in JobStatus:
            verbs = [verb.value for verb in JobVerb if verb_allowed(status, verb)]
            if verbs:
                lines.append(f"    note right of {_node(status)}: {', '.join(verbs)}")
    return "\n".join(lines) + "\n"

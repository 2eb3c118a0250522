"""The job state machine must match QEMU 7.2's job.c cell for cell."""

from __future__ import annotations

import itertools
import re

import pytest

from qjobd.errors import QMPError
from qjobd.jobs import fsm
from qjobd.jobs.fsm import (
    TRANSITIONS,
    VERBS,
    JobStatus,
    JobVerb,
    check_transition,
    check_verb,
)

# Written out independently of the module, by QAPI name, from QEMU 7.2.
STATUS_NAMES = [
    "undefined", "created", "running", "paused", "ready", "standby",
    "waiting", "pending", "aborting", "concluded", "null",
]  # fmt: skip
VERB_NAMES = ["cancel", "pause", "resume", "set-speed", "complete", "dismiss", "finalize"]

EXPECTED_TRANSITIONS: dict[str, set[str]] = {
    "undefined": {"created"},
    "created": {"running", "aborting", "null"},
    "running": {"paused", "ready", "waiting", "aborting"},
    "paused": {"running"},
    "ready": {"standby", "waiting", "aborting"},
    "standby": {"ready"},
    "waiting": {"pending", "aborting"},
    "pending": {"aborting", "concluded"},
    "aborting": {"aborting", "concluded"},
    "concluded": {"null"},
    "null": set(),
}

EXPECTED_VERBS: dict[str, set[str]] = {
    "cancel": {"created", "running", "paused", "ready", "standby", "waiting", "pending"},
    "pause": {"created", "running", "paused", "ready", "standby"},
    "resume": {"created", "running", "paused", "ready", "standby"},
    "set-speed": {"created", "running", "paused", "ready", "standby"},
    "complete": {"ready", "standby"},
    "dismiss": {"concluded"},
    "finalize": {"pending"},
}

ALL_MOVES = list(itertools.product(JobStatus, JobStatus))
ALL_COMMANDS = list(itertools.product(JobStatus, JobVerb))


def _move_id(move: tuple[JobStatus, JobStatus]) -> str:
    return f"{move[0].value}->{move[1].value}"


def _command_id(command: tuple[JobStatus, JobVerb]) -> str:
    return f"{command[0].value}:{command[1].value}"


# --- the enums ---------------------------------------------------------------------


def test_status_names_and_order() -> None:
    assert [s.value for s in JobStatus] == STATUS_NAMES
    for status in JobStatus:
        assert status.name == status.value.upper()


def test_verb_names_and_order() -> None:
    assert [v.value for v in JobVerb] == VERB_NAMES
    for verb in JobVerb:
        assert verb.name == verb.value.upper().replace("-", "_")


def test_no_change_verb_in_7_2() -> None:
    # 'change' (job-change) only appeared in later QEMU releases.
    with pytest.raises(ValueError, match="change"):
        JobVerb("change")


def test_lookup_by_qapi_name() -> None:
    assert JobStatus("standby") is JobStatus.STANDBY
    assert JobVerb("set-speed") is JobVerb.SET_SPEED


# --- the tables as data -------------------------------------------------------------


def test_transition_table_equals_expectation() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    as_names = {old.value: {new.value for new in news} for old, news in TRANSITIONS.items()}
    assert as_names == EXPECTED_TRANSITIONS
    for news in TRANSITIONS.values():
        assert isinstance(news, frozenset)


def test_verb_table_equals_expectation() -> None:
    assert set(VERBS) == set(JobVerb)
    as_names = {verb.value: {s.value for s in statuses} for verb, statuses in VERBS.items()}
    assert as_names == EXPECTED_VERBS
    for statuses in VERBS.values():
        assert isinstance(statuses, frozenset)


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[JobStatus.NULL] = frozenset({JobStatus.CREATED})  # type: ignore[index]
    with pytest.raises(TypeError):
        VERBS[JobVerb.DISMISS] = frozenset(JobStatus)  # type: ignore[index]


def test_table_shape() -> None:
    # The only self-transition is aborting -> aborting.
    assert [s for s in JobStatus if s in TRANSITIONS[s]] == [JobStatus.ABORTING]
    # Nothing re-enters undefined; null is terminal.
    assert all(JobStatus.UNDEFINED not in news for news in TRANSITIONS.values())
    assert TRANSITIONS[JobStatus.NULL] == frozenset()
    # Every status is reachable from undefined, and every one can reach null.
    seen = {JobStatus.UNDEFINED}
    todo = [JobStatus.UNDEFINED]
    while todo:
        for new in TRANSITIONS[todo.pop()]:
            if new not in seen:
                seen.add(new)
                todo.append(new)
    assert seen == set(JobStatus)
    for start in JobStatus:
        here = {start}
        for _ in JobStatus:
            here |= {new for old in here for new in TRANSITIONS[old]}
        assert JobStatus.NULL in here, start
    # Nothing is accepted while a job is undefined, aborting or null.
    for status in (JobStatus.UNDEFINED, JobStatus.ABORTING, JobStatus.NULL):
        assert fsm.accepted_verbs(status) == frozenset()


def test_accepted_verbs() -> None:
    assert fsm.accepted_verbs(JobStatus.STANDBY) == frozenset(
        {JobVerb.CANCEL, JobVerb.PAUSE, JobVerb.RESUME, JobVerb.SET_SPEED, JobVerb.COMPLETE}
    )
    assert fsm.accepted_verbs(JobStatus.WAITING) == frozenset({JobVerb.CANCEL})
    assert fsm.accepted_verbs(JobStatus.PENDING) == frozenset({JobVerb.CANCEL, JobVerb.FINALIZE})
    assert fsm.accepted_verbs(JobStatus.CONCLUDED) == frozenset({JobVerb.DISMISS})


# --- every (status, verb) pair -----------------------------------------------------


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=_command_id)
def test_check_verb(command: tuple[JobStatus, JobVerb]) -> None:
    status, verb = command
    job_id = "job0"
    if status.value in EXPECTED_VERBS[verb.value]:
        assert fsm.verb_allowed(status, verb)
        check_verb(job_id, status, verb)  # must not raise
    else:
        assert not fsm.verb_allowed(status, verb)
        with pytest.raises(QMPError) as info:
            check_verb(job_id, status, verb)
        err = info.value
        assert type(err) is QMPError
        assert err.error_class == "GenericError"
        assert err.desc == (
            "Job 'job0' in state '" + status.value
            + "' cannot accept command verb '" + verb.value + "'"
        )  # fmt: skip


def test_check_verb_literal_messages() -> None:
    cases = [
        ("drive-mirror0", JobStatus.RUNNING, JobVerb.COMPLETE,
         "Job 'drive-mirror0' in state 'running' cannot accept command verb 'complete'"),
        ("b", JobStatus.CONCLUDED, JobVerb.SET_SPEED,
         "Job 'b' in state 'concluded' cannot accept command verb 'set-speed'"),
        ("x y", JobStatus.WAITING, JobVerb.FINALIZE,
         "Job 'x y' in state 'waiting' cannot accept command verb 'finalize'"),
        ("", JobStatus.NULL, JobVerb.DISMISS,
         "Job '' in state 'null' cannot accept command verb 'dismiss'"),
    ]  # fmt: skip
    for job_id, status, verb, text in cases:
        with pytest.raises(QMPError, match=re.escape(text)) as info:
            check_verb(job_id, status, verb)
        assert info.value.desc == text
        assert str(info.value) == text


# --- every (from, to) pair ---------------------------------------------------------


@pytest.mark.parametrize("move", ALL_MOVES, ids=_move_id)
def test_check_transition(move: tuple[JobStatus, JobStatus]) -> None:
    old, new = move
    if new.value in EXPECTED_TRANSITIONS[old.value]:
        assert fsm.transition_allowed(old, new)
        assert check_transition(old, new) is (old != new)
    else:
        assert not fsm.transition_allowed(old, new)
        with pytest.raises(AssertionError, match=f"'{old.value}' -> '{new.value}'"):
            check_transition(old, new)


def test_only_aborting_self_transition_is_silent() -> None:
    silent = [move for move in ALL_MOVES if fsm.transition_allowed(*move)
              and not check_transition(*move)]  # fmt: skip
    assert silent == [(JobStatus.ABORTING, JobStatus.ABORTING)]


@pytest.mark.parametrize(
    "path",
    [
        # plain success with auto-finalize/auto-dismiss
        ["undefined", "created", "running", "waiting", "pending", "concluded", "null"],
        # pause and resume, then fail
        ["created", "running", "paused", "running", "aborting", "concluded", "null"],
        # mirror: ready, standby, back to ready, completed
        ["running", "ready", "standby", "ready", "waiting", "pending", "concluded"],
        # cancelled before start (aborting re-entered silently); setup failure
        ["created", "aborting", "aborting", "concluded", "null"],
        ["created", "null"],
        # transaction partner failed / finalisation failed
        ["waiting", "aborting", "concluded"],
        ["pending", "aborting", "concluded"],
    ],
)
def test_lifecycle_paths(path: list[str]) -> None:
    statuses = [JobStatus(name) for name in path]
    changes = [check_transition(a, b) for a, b in itertools.pairwise(statuses)]
    assert changes == [a != b for a, b in itertools.pairwise(statuses)]


def test_check_transition_fires_without_assert_statements() -> None:
    # Explicit raise, not an ``assert`` statement: must hold under ``python -O`` too.
    with pytest.raises(AssertionError):
        check_transition(JobStatus.NULL, JobStatus.CREATED)
    with pytest.raises(AssertionError):
        check_transition(JobStatus.PAUSED, JobStatus.ABORTING)
    with pytest.raises(AssertionError):
        check_transition(JobStatus.RUNNING, JobStatus.RUNNING)


# --- the diagram -------------------------------------------------------------------


def test_mermaid_diagram_has_exactly_the_table_edges() -> None:
    text = fsm.mermaid_diagram()
    assert text.startswith("stateDiagram-v2\n")
    assert text.endswith("\n")
    edges = set(re.findall(r"^ {4}st_(\S+) --> st_(\S+)$", text, re.MULTILINE))
    expected = {(old, new) for old, news in EXPECTED_TRANSITIONS.items() for new in news}
    assert edges == expected
    for name in STATUS_NAMES:
        assert f'    state "{name}" as st_{name}\n' in text
    assert "    [*] --> st_undefined\n" in text
    assert "    st_null --> [*]\n" in text
    assert "    note right of st_pending: cancel, finalize\n" in text
    assert "    note right of st_concluded: dismiss\n" in text
    assert "note right of st_aborting" not in text
    assert text == fsm.mermaid_diagram()  # deterministic


def test_mermaid_diagram_without_verbs() -> None:
    text = fsm.mermaid_diagram(with_verbs=False)
    assert "note" not in text
    assert fsm.mermaid_diagram().startswith(text)

"""The job engine with a driver that only counts: exact status and event sequences.

Runs in virtual time (trio's autojump clock), so pauses, speeds and cancels are
deterministic and the tests take no wall time.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from helpers.engine import Engine

from qjobd.errors import QMPError
from qjobd.ids import id_wellformed
from qjobd.jobs.job import Job, JobDriver, JobFailed
from qjobd.jobs.transaction import Transaction

CHUNK = 1 << 20


class Counter(JobDriver):
    """Moves ``chunks`` imaginary MiB, honouring speed; can fail or wait for complete."""

    job_type = "backup"

    def __init__(self, chunks: int = 8, fail_at: int | None = None, ready: bool = False) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.ready = ready
        self.should_complete = False
        self.calls: list[str] = []

    async def run(self, job: Job) -> None:
        job.progress_set_remaining(self.chunks * CHUNK)
        for index in range(self.chunks):
            await job.pause_point()
            if index == self.fail_at:
                raise JobFailed("Input/output error")
            await trio.sleep(0.001)  # the "I/O"
            job.progress_update(CHUNK)
            await job.rate_limit(CHUNK)
        if self.ready:
            job.transition_to_ready()
            while not self.should_complete and not job.cancel_requested:
                await job.yield_until_kicked()

    def complete(self, job: Job) -> None:
        self.should_complete = True
        job.kick()

    def cancel(self, job: Job, force: bool) -> bool:
        return force or not job.is_ready if self.ready else True

    def commit(self, job: Job) -> None:
        self.calls.append("commit")

    def abort(self, job: Job) -> None:
        self.calls.append("abort")

    def clean(self, job: Job) -> None:
        self.calls.append("clean")


async def test_success_walks_created_to_null(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    driver = Counter()
    engine.start("j1", driver)
    await events.wait_for(lambda: "j1" not in manager.jobs)
    assert events.statuses("j1") == [
        "created", "running", "waiting", "pending", "concluded", "null"
    ]
    assert events.names() == ["BLOCK_JOB_COMPLETED"]
    assert events.seen[-3][1] == {
        "type": "backup", "device": "j1", "len": 8 * CHUNK, "offset": 8 * CHUNK, "speed": 0
    }
    assert driver.calls == ["commit", "clean"]


async def test_manual_finalize_and_dismiss(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    job = engine.start("j1", Counter(), auto_finalize=False, auto_dismiss=False)
    await events.wait_for(lambda: job.status.value == "pending")
    assert events.names() == ["BLOCK_JOB_PENDING"]
    for verb in (lambda: manager.user_dismiss(job), job.user_pause, job.user_complete):
        with pytest.raises(QMPError, match=r"in state 'pending' cannot accept"):
            verb()
    manager.user_finalize(job)
    assert job.status.value == "concluded"
    assert events.names() == ["BLOCK_JOB_PENDING", "BLOCK_JOB_COMPLETED"]
    refused = r"Job 'j1' in state 'concluded' cannot accept command verb 'cancel'"
    with pytest.raises(QMPError, match=refused):
        manager.user_cancel(job, force=True)
    manager.user_dismiss(job)
    assert events.statuses("j1")[-2:] == ["concluded", "null"]
    assert manager.jobs == {}


async def test_pause_resume_and_errors(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    events = engine.events
    job = engine.start("j", Counter(chunks=100), speed=CHUNK)
    await trio.sleep(3)
    job.user_pause()
    await job.settle()
    assert job.status.value == "paused"
    with pytest.raises(QMPError, match=r"^Job is already paused$"):
        job.user_pause()
    done = job.progress_current
    await trio.sleep(10)
    assert job.progress_current == done  # nothing moves while paused
    job.user_resume()
    await job.settle()
    assert job.status.value == "running"
    with pytest.raises(QMPError, match=r"^Can't resume a job that was not paused$"):
        job.user_resume()
    assert events.statuses("j") == ["created", "running", "paused", "running"]


async def test_speed_is_accurate_in_virtual_time(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager = engine.manager
    for speed in (10 * CHUNK, 100 * CHUNK):
        job = engine.start(f"s{speed}", Counter(chunks=100000), speed=speed)
        begin = trio.current_time()
        await trio.sleep(10)
        rate = job.progress_current / (trio.current_time() - begin)
        assert abs(rate - speed) / speed < 0.05
        manager.user_cancel(job, force=True)
        await job.settle()


async def test_set_speed_checks_and_applies(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    job = engine.start("j", Counter(chunks=100000), speed=CHUNK)
    with pytest.raises(QMPError, match=r"^Parameter 'speed' expects a non-negative value$"):
        job.user_set_speed(-1)
    await trio.sleep(5)
    job.user_set_speed(4 * CHUNK)
    before, begin = job.progress_current, trio.current_time()
    await trio.sleep(10)
    rate = (job.progress_current - before) / (trio.current_time() - begin)
    assert abs(rate - 4 * CHUNK) / (4 * CHUNK) < 0.05


async def test_cancel_while_rate_limited_is_immediate(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    driver = Counter(chunks=1000)
    job = engine.start("j", driver, speed=CHUNK)
    await trio.sleep(2.5)
    cancelled_at = trio.current_time()
    manager.user_cancel(job, force=True)
    await job.settle()
    assert trio.current_time() - cancelled_at < 0.005
    assert events.statuses("j") == ["created", "running", "aborting", "concluded", "null"]
    assert events.names() == ["BLOCK_JOB_CANCELLED"]
    assert driver.calls == ["abort", "clean"]


async def test_cancel_while_paused_resumes_first(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    job = engine.start("j", Counter(chunks=1000), speed=CHUNK)
    await trio.sleep(1)
    job.user_pause()
    await job.settle()
    manager.user_cancel(job, force=True)
    await job.settle()
    assert events.statuses("j") == [
        "created", "running", "paused", "running", "aborting", "concluded", "null"
    ]


async def test_failure_reports_error(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    events = engine.events
    job = engine.start("j", Counter(fail_at=3), auto_dismiss=False)
    await events.wait_for(lambda: job.status.value == "concluded")
    assert events.statuses("j") == ["created", "running", "aborting", "concluded"]
    name, data = events.seen[-2]
    assert name == "BLOCK_JOB_COMPLETED"
    assert data == {"type": "backup", "device": "j", "len": 8 * CHUNK, "offset": 3 * CHUNK,
                    "speed": 0, "error": "Input/output error"}
    assert job.info()["error"] == "Input/output error"


async def test_ready_standby_complete(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    job = engine.start("m", Counter(ready=True))
    await events.wait_for(lambda: job.status.value == "ready")
    job.user_pause()
    await job.settle()
    assert job.status.value == "standby"
    job.user_resume()
    await job.settle()
    job.user_complete()
    await events.wait_for(lambda: "m" not in manager.jobs)
    assert events.statuses("m") == [
        "created", "running", "ready", "standby", "ready", "waiting", "pending", "concluded",
        "null",
    ]
    assert events.names() == ["BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED"]


async def test_soft_cancel_of_ready_job_completes(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    driver = Counter(ready=True)
    job = engine.start("m", driver)
    await events.wait_for(lambda: job.status.value == "ready")
    manager.user_cancel(job, force=False)
    await events.wait_for(lambda: "m" not in manager.jobs)
    assert events.statuses("m")[-4:] == ["waiting", "pending", "concluded", "null"]
    assert events.names() == ["BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED"]
    assert driver.calls == ["commit", "clean"]


async def test_grouped_transaction_waits_then_completes_together(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    txn = Transaction()
    fast = manager.create("t1", Counter(chunks=2), txn=txn)
    slow = manager.create("t2", Counter(chunks=20), txn=txn)
    manager.start(fast)
    manager.start(slow)
    await events.wait_for(lambda: not manager.jobs)
    assert events.statuses("t1") == [
        "created", "running", "waiting", "pending", "concluded", "null"
    ]
    order = [(data or {}).get("id") for name, data in events.seen
             if name == "JOB_STATUS_CHANGE" and data and data["status"] == "pending"]
    assert order == ["t2", "t1"]  # newest member first, as QEMU walks its list


async def test_grouped_transaction_cancel_aborts_all(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    txn = Transaction()
    first = manager.create("t1", Counter(chunks=2), txn=txn)
    second = manager.create("t2", Counter(chunks=100), txn=txn, speed=CHUNK)
    manager.start(first)
    manager.start(second)
    await events.wait_for(lambda: first.status.value == "waiting")
    manager.user_cancel(second, force=True)
    await second.settle()
    await events.wait_for(lambda: not manager.jobs)
    assert events.statuses("t2") == ["created", "running", "aborting", "concluded", "null"]
    assert events.statuses("t1") == [
        "created", "running", "waiting", "aborting", "concluded", "null"
    ]
    assert events.names() == ["BLOCK_JOB_CANCELLED", "BLOCK_JOB_CANCELLED"]


async def test_grouped_transaction_failure_cancels_running_member(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager, events = engine.manager, engine.events
    txn = Transaction()
    failing = manager.create("bad", Counter(chunks=10, fail_at=2), txn=txn)
    other = manager.create("ok", Counter(chunks=1000), txn=txn, speed=CHUNK)
    manager.start(failing)
    manager.start(other)
    await events.wait_for(lambda: not manager.jobs)
    assert events.statuses("bad") == ["created", "running", "aborting", "concluded", "null"]
    assert events.statuses("ok") == ["created", "running", "aborting", "concluded", "null"]
    kinds = [(name, (data or {}).get("device")) for name, data in events.seen
             if name.startswith("BLOCK_JOB")]
    assert kinds == [("BLOCK_JOB_CANCELLED", "ok"), ("BLOCK_JOB_COMPLETED", "bad")]


@pytest.mark.parametrize(
    ("job_id", "ok"),
    [("a", True), ("a-b.c_9", True), ("", False), ("9a", False), ("bad id!", False),
     ("-x", False), ("é", False)],
)
def test_job_id_rules(job_id: str, ok: bool) -> None:
    assert id_wellformed(job_id) is ok


async def test_duplicate_and_bad_ids(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    manager = engine.manager
    engine.start("j", Counter(chunks=1000), speed=CHUNK)
    with pytest.raises(QMPError, match=r"^Job ID 'j' already in use$"):
        manager.create("j", Counter())
    with pytest.raises(QMPError, match=r"^Invalid job ID ''$"):
        manager.create("", Counter())

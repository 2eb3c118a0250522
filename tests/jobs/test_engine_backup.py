"""The backup driver and the job engine in-process: rate limits in virtual time,
copy-before-write through the filter, chunk bookkeeping, stacked filters, and the
transaction roll-back of jobs that never started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers.engine import Engine
from helpers.images import MiB, make_image
from helpers.model import event_bus
from helpers.nodes import raw_opts

from qjobd.block import BlockGraph, BlockNode
from qjobd.errors import QMPError
from qjobd.jobdrivers.backup import (
    CLUSTER_SIZE,
    BackupDriver,
    BackupFilter,
    BackupOptions,
    ChunkMap,
    setup_backup,
)
from qjobd.jobdrivers.blockjob import BlockJobOptions
from qjobd.jobs.fsm import JobStatus
from qjobd.jobs.job import Job, JobDriver
from qjobd.jobs.manager import JobManager
from qjobd.jobs.transaction import Transaction


def backup_options(job_id: str, sync: str = "full", **extra: Any) -> BackupOptions:
    """What the backup handlers build, with QMP's defaults; ``extra`` may set common
    members (speed, on_source_error...) and backup ones."""
    common_names = {"speed", "auto_finalize", "auto_dismiss", "on_source_error",
                    "on_target_error"}
    common = {k: v for k, v in extra.items() if k in common_names}
    own = {k: v for k, v in extra.items() if k not in common_names}
    return BackupOptions(common=BlockJobOptions(job_id, **common), sync=sync, **own)


def backup(engine: Engine, job_id: str, source: str, target: str, start: bool = True,
           txn: Transaction | None = None, **extra: Any) -> Job:
    """setup_backup as the handlers call it, then (unless not ``start``) start the job."""
    job = setup_backup(engine.graph, engine.manager, engine.graph.lookup(source),
                       engine.graph.lookup(target), backup_options(job_id, **extra), txn=txn)
    if start:
        engine.manager.start(job)
    return job


def raw(graph: BlockGraph, name: str, path: Path) -> BlockNode:
    return graph.add(raw_opts(name, path))


# Section: speed in virtual time


async def inline_run_io(self: Job, function: Callable[..., Any], *args: Any) -> Any:
    """Job.run_io without the thread: null-co I/O takes no time, virtual time is exact."""
    await trio.lowlevel.checkpoint()
    return function(*args)


@pytest.mark.parametrize("speed", [10 * MiB, 100 * MiB])
async def test_rate_limit_in_virtual_time(
    engine: Engine, autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch, speed: int,
) -> None:
    monkeypatch.setattr(Job, "run_io", inline_run_io)
    for name in ("s", "t"):
        engine.graph.add({"driver": "null-co", "node-name": name, "size": 4 << 30})
    job = backup(engine, "r", "s", "t", speed=speed)
    await trio.sleep(1)
    begin, done = trio.current_time(), job.progress_current
    await trio.sleep(10)
    rate = (job.progress_current - done) / (trio.current_time() - begin)
    assert abs(rate - speed) / speed < 0.05
    # A new speed applies at once, and so does cancel.
    job.user_set_speed(speed // 2)
    await trio.sleep(1)
    begin, done = trio.current_time(), job.progress_current
    await trio.sleep(10)
    rate = (job.progress_current - done) / (trio.current_time() - begin)
    assert abs(rate - speed / 2) / (speed / 2) < 0.05
    engine.manager.user_cancel(job, force=True)
    await job.settle()
    assert engine.events.statuses("r")[-3:] == ["aborting", "concluded", "null"]


# Section: copy-before-write


async def test_writes_through_the_filter_copy_the_old_data_first(
    engine: Engine, tmp_path: Path
) -> None:
    source_path = make_image(tmp_path / "s.raw", 8 * MiB, data=True, seed=41)
    target_path = make_image(tmp_path / "t.raw", 8 * MiB, fill=0x33)
    old = source_path.read_bytes()
    raw(engine.graph, "s", source_path)
    raw(engine.graph, "t", target_path)
    # A node above the source: after the filter goes in, its writes pass through it.
    top = engine.graph.add({"driver": "raw", "node-name": "top", "file": "s"})
    job = backup(engine, "b", "s", "t", speed=MiB, **{"auto_dismiss": False})
    driver = job.driver
    assert isinstance(driver, BackupDriver)
    assert top.children["file"] is driver.cbw
    await engine.events.wait_for(lambda: job.progress_current >= MiB)
    new = b"\xab" * (MiB + 4096)
    await trio.to_thread.run_sync(top.pwrite, 5 * MiB - 4096, new)
    # Chunks 4 and 5 were saved to the target before the write went on.
    target = target_path.read_bytes()
    assert target[4 * MiB:6 * MiB] == old[4 * MiB:6 * MiB]
    job.user_set_speed(0)
    await engine.events.wait_status("b", "concluded")
    assert target_path.read_bytes() == old
    assert source_path.read_bytes()[5 * MiB - 4096:6 * MiB] == new
    assert top.children["file"] is engine.graph.lookup("s")


async def test_sync_none_copies_only_what_is_written(engine: Engine, tmp_path: Path) -> None:
    source_path = make_image(tmp_path / "s.raw", 4 * MiB, data=True, seed=42)
    target_path = make_image(tmp_path / "t.raw", 4 * MiB, fill=0x44)
    old = source_path.read_bytes()
    raw(engine.graph, "s", source_path)
    raw(engine.graph, "t", target_path)
    top = engine.graph.add({"driver": "raw", "node-name": "top", "file": "s"})
    job = backup(engine, "n", "s", "t", sync="none")
    await engine.events.wait_for(lambda: job.progress_total == 4 * MiB)  # run() began
    await trio.to_thread.run_sync(top.write_zeroes, 2 * MiB + 100, 10)
    target = target_path.read_bytes()
    assert target[2 * MiB:3 * MiB] == old[2 * MiB:3 * MiB]
    assert target[:2 * MiB] + target[3 * MiB:] == b"\x44" * (3 * MiB)
    engine.manager.user_cancel(job, force=True)
    await engine.events.wait_status("n", "null")
    assert engine.events.statuses("n") == ["created", "running", "aborting", "concluded", "null"]
    assert engine.events.data("BLOCK_JOB_CANCELLED") == [
        {"type": "backup", "device": "n", "len": 4 * MiB, "offset": MiB, "speed": 0}]


def test_filter_permissions(tmp_path: Path) -> None:
    graph = BlockGraph()
    raw(graph, "s", make_image(tmp_path / "s.raw", MiB, data=True))
    raw(graph, "t", make_image(tmp_path / "t.raw", MiB, data=True))
    raw(graph, "u", make_image(tmp_path / "u.raw", MiB, data=True))
    manager = JobManager(event_bus())
    setup_backup(graph, manager, graph.lookup("s"), graph.lookup("t"),
                 backup_options("b"))
    cbw = next(node for node in graph if isinstance(node, BackupFilter))
    # Nobody may write the source behind the filter, nor the target besides the job.
    with pytest.raises(QMPError, match=r"^Permission conflict on node 's': permissions "
                       r"'write' are both required by stream job 'x'"):
        graph.acquire("s", "stream job 'x'", True)
    with pytest.raises(QMPError, match=r"^Permission conflict on node 't'"):
        graph.acquire("t", "stream job 'x'", True, share_write=True)
    graph.acquire("s", "mirror job 'm'", False).release()
    with pytest.raises(QMPError, match=r"^Block device s is in use$"):
        graph.delete("s")
    assert cbw.filename == str(tmp_path / "s.raw")


# Section: chunk bookkeeping


def test_chunk_map_counts_whole_clusters() -> None:
    chunks = ChunkMap(100 * 1024 + 512)
    assert (chunks.count, chunks.total) == (1, 2 * CLUSTER_SIZE)
    assert chunks.extent(0) == (0, 100 * 1024 + 512)
    big = ChunkMap(5 * MiB + 512, chunk_size=2 * MiB)
    assert [big.weight(i) for i in range(big.count)] == [2 * MiB, 2 * MiB, MiB + CLUSTER_SIZE]
    assert sum(big.weight(i) for i in range(big.count)) == big.total
    assert list(big.indices(2 * MiB - 1, 2)) == [0, 1]
    assert big.next_dirty(0) == 0
    assert big.copy(1, lambda offset, length: None) is None
    assert (big.next_dirty(1), big.next_dirty(1, 2), big.done_bytes) == (2, None, 2 * MiB)
    assert not big.complete


def test_chunk_map_copies_each_chunk_once() -> None:
    chunks = ChunkMap(8 * MiB)
    calls: list[int] = []
    lock = threading.Lock()

    def copier(offset: int, length: int) -> None:
        with lock:
            calls.append(offset)

    threads = [threading.Thread(target=lambda: [chunks.copy(i, copier) for i in range(8)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(calls) == [i * MiB for i in range(8)]
    assert chunks.complete
    assert chunks.done_bytes == 8 * MiB


# Section: several backups of one source


async def test_stacked_filters_come_out_in_any_order(engine: Engine, tmp_path: Path) -> None:
    source_path = make_image(tmp_path / "s.raw", 4 * MiB, data=True, seed=43)
    raw(engine.graph, "s", source_path)
    for name in ("t1", "t2", "t3"):
        raw(engine.graph, name, make_image(tmp_path / f"{name}.raw", 4 * MiB, data=True))
    jobs = [backup(engine, f"b{i}", "s", f"t{i}", speed=1) for i in (1, 2, 3)]
    filters = [node for node in engine.graph if isinstance(node, BackupFilter)]
    assert len(filters) == 3
    # Cancelling the bottom and the top filter's jobs leaves the middle one working.
    engine.manager.user_cancel(jobs[0], force=True)
    engine.manager.user_cancel(jobs[2], force=True)
    await engine.events.wait_for(lambda: jobs[0].status == jobs[2].status == JobStatus.NULL)
    assert [node for node in engine.graph if isinstance(node, BackupFilter)] == [filters[1]]
    jobs[1].user_set_speed(0)
    await engine.events.wait_status("b2", "null")
    assert (tmp_path / "t2.raw").read_bytes() == source_path.read_bytes()
    assert not any(isinstance(node, BackupFilter) for node in engine.graph)
    assert engine.graph.lookup("s").parents == []


# Section: transactions whose jobs never started


async def test_grouped_roll_back_of_created_jobs(engine: Engine, tmp_path: Path) -> None:
    raw(engine.graph, "s", make_image(tmp_path / "s.raw", MiB, data=True))
    raw(engine.graph, "t1", make_image(tmp_path / "t1.raw", MiB, data=True))
    raw(engine.graph, "t2", make_image(tmp_path / "t2.raw", MiB, data=True))
    nodes_before = len(engine.graph)
    txn = Transaction()
    first = backup(engine, "b1", "s", "t1", start=False, txn=txn)
    second = backup(engine, "b2", "s", "t2", start=False, txn=txn)
    for job in (second, first):
        if job.status != JobStatus.NULL:
            engine.manager.cancel(job, force=True)
    assert engine.events.statuses("b2") == ["created", "aborting", "concluded", "null"]
    assert engine.events.statuses("b1") == ["created", "aborting", "concluded", "null"]
    assert engine.events.names() == []
    assert engine.manager.jobs == {}
    assert len(engine.graph) == nodes_before


async def test_negative_speed_is_created_then_dismissed(engine: Engine) -> None:
    class Idle(JobDriver):
        job_type = "backup"

    with pytest.raises(QMPError, match=r"^Parameter 'speed' expects a non-negative value$"):
        engine.manager.create("j", Idle(), speed=-1)
    assert engine.events.statuses("j") == ["created", "null"]
    assert engine.manager.jobs == {}

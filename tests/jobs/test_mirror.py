"""The mirror job (blockdev-mirror, drive-mirror) against real daemons and in process.

* The recorded qemu-storage-daemon exchanges replay byte for byte (timestamps and
  generated node names aside) against a real qjobd.
* Differential runs: the same scenario against QSD 7.2 and qjobd gives the same
  replies and events in the same order, and the same images (``qemu-img compare``).
* Cancelling at random points leaves the source untouched, the target made of whole
  copied pieces, and the daemon serving; a client that goes away leaves its job be.
* In process: writes that reach the source while the mirror runs or is ready are
  copied too, so the target equals the source after ``job-complete``.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.client import Transcript, mask_node_names
from helpers.engine import Engine
from helpers.images import MiB, assert_same_content, digest, make_image
from helpers.nodes import raw_opts
from mirror_exchanges import (
    CANCEL_WHEN_READY,
    DRIVE_MIRROR_COMPLETE,
    JOB_CANCEL_READY,
    READY_STANDBY_COMPLETE,
)

from qjobd.block import BlockNode
from qjobd.errors import QMPError
from qjobd.jobdrivers.blockjob import BlockJobOptions
from qjobd.jobdrivers.mirror import MirrorDriver, MirrorOptions, setup_mirror
from qjobd.jobs.job import Job

# Section: helpers


def replay(log: Transcript, recorded: list[str]) -> None:
    """Send each recorded request and read as many lines as were recorded after it."""
    steps: list[tuple[str, int]] = []
    for line in recorded:
        if line.startswith("> "):
            steps.append((line[2:], 0))
        else:
            steps[-1] = (steps[-1][0], steps[-1][1] + 1)
    for request, count in steps:
        log.send_line(request)
        for _ in range(count):
            log.receive()
    log.settle(0.1)
    assert log.lines == [mask_node_names(line) for line in recorded]


@pytest.fixture
def qjobd(qjobd_socket: Path, tmp_path: Path) -> Iterator[Callable[[], Transcript]]:
    """Open transcripts on a qjobd (``tmp_path`` as /tmp/X); all closed afterwards."""
    logs: list[Transcript] = []

    def connect() -> Transcript:
        log = Transcript(qjobd_socket, tmp_path)
        logs.append(log)
        return log

    yield connect
    for log in logs:
        log.close()


# Section: the recorded exchanges


def test_transcript_ready_standby_complete_and_cancel_when_ready(
    qjobd: Callable[[], Transcript], tmp_path: Path
) -> None:
    log = qjobd()
    make_image(tmp_path / "src.raw", 64 * MiB)
    make_image(tmp_path / "dst.raw", 64 * MiB)
    assert log.quiet("blockdev-add", raw_opts("src", tmp_path / "src.raw")) == {"return": {}}
    assert log.quiet("blockdev-add", raw_opts("dst", tmp_path / "dst.raw")) == {"return": {}}
    replay(log, READY_STANDBY_COMPLETE)
    log.lines.clear()
    replay(log, CANCEL_WHEN_READY)


def test_transcript_job_cancel_when_ready_and_drive_mirror_pivot(
    qjobd: Callable[[], Transcript], tmp_path: Path
) -> None:
    log = qjobd()
    make_image(tmp_path / "a.img", 32 * MiB, data=True)
    make_image(tmp_path / "b.img", 32 * MiB)
    log.quiet("blockdev-add", raw_opts("a", tmp_path / "a.img"))
    log.quiet("blockdev-add", raw_opts("b", tmp_path / "b.img"))
    replay(log, JOB_CANCEL_READY)
    assert_same_content(tmp_path / "a.img", tmp_path / "b.img")
    log.lines.clear()
    replay(log, DRIVE_MIRROR_COMPLETE)
    assert_same_content(tmp_path / "a.img", tmp_path / "dm.img")


# Section: argument checks, in QEMU's order, with QSD's texts

#: (arguments, expected reply or events+reply); recorded from QSD 7.2 with nodes
#: a (8 MiB), b (8 MiB), c (4 MiB) and a file node fb under a raw node rb.
BLOCKDEV_MIRROR_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"device": "nope"}, "Cannot find device='nope' nor node-name='nope'"),
    ({"target": "nope"}, "Cannot find device='nope' nor node-name='nope'"),
    ({"device": "fb"}, "Need a root block node"),
    ({"target": "a"}, "Can't mirror node into itself"),
    ({"job-id": None}, "Invalid job ID ''"),
    ({"job-id": "bad id"}, "Invalid job ID 'bad id'"),
    ({"job-id": ""}, "Invalid job ID ''"),
    ({"sync": "incremental"}, "Sync mode 'incremental' not supported"),
    ({"sync": "bitmap"}, "Sync mode 'bitmap' not supported"),
    ({"granularity": 256},
     "Parameter 'granularity' expects a value in range [512B, 64MB]"),
    ({"granularity": 128 * MiB},
     "Parameter 'granularity' expects a value in range [512B, 64MB]"),
    ({"granularity": 1000}, "Parameter 'granularity' expects a power of 2"),
    ({"buf-size": -1}, "Invalid parameter 'buf-size'"),
    ({"replaces": "nope"}, "Failed to find node with node-name='nope'"),
    ({"replaces": "c"},
     "Cannot replace 'c' by a node mirrored from 'a', because it cannot be guaranteed "
     "that doing so would not lead to an abrupt change of visible data"),
    ({"filter-node-name": "bad name"}, "Invalid node-name: 'bad name'"),
    ({"filter-node-name": "b"}, "Duplicate nodes with node-name='b'"),
    # The order of the checks, shown by requests with several things wrong.
    ({"job-id": "bad id", "device": "nope", "granularity": 100},
     "Cannot find device='nope' nor node-name='nope'"),
    ({"job-id": "bad id", "granularity": 100},
     "Parameter 'granularity' expects a value in range [512B, 64MB]"),
    ({"job-id": "bad id", "buf-size": -1, "filter-node-name": "bad name"},
     "Invalid parameter 'buf-size'"),
    ({"job-id": "bad id", "filter-node-name": "a"}, "Duplicate nodes with node-name='a'"),
    ({"job-id": "bad id", "target": "a", "filter-node-name": "bad name"},
     "Can't mirror node into itself"),
    ({"job-id": "bad id", "target": "a", "sync": "incremental"},
     "Sync mode 'incremental' not supported"),
    ({"job-id": "bad id", "sync": "none"}, "Invalid job ID 'bad id'"),
]


def _error_exchanges(log: Transcript, tmp: Path) -> None:
    make_image(tmp / "a.img", 8 * MiB, data=True)
    make_image(tmp / "b.img", 8 * MiB)
    make_image(tmp / "c.img", 4 * MiB)
    make_image(tmp / "fb.img", 8 * MiB)
    for name in "abc":
        log.quiet("blockdev-add", raw_opts(name, tmp / f"{name}.img"))
    log.quiet("blockdev-add",
              {"driver": "file", "node-name": "fb", "filename": str(tmp / "fb.img")})
    log.quiet("blockdev-add", {"driver": "raw", "node-name": "rb", "file": "fb"})
    for change, _ in BLOCKDEV_MIRROR_ERRORS:
        arguments: dict[str, Any] = {"job-id": "m", "device": "a", "target": "b", "sync": "full"}
        arguments.update(change)
        log.cmd("blockdev-mirror", {k: v for k, v in arguments.items() if v is not None})
    # Failures after the job was created: created, then null, then the error.
    log.cmd("blockdev-mirror", {"job-id": "m", "device": "a", "target": "b", "sync": "full",
                                 "speed": -1})
    log.quiet("blockdev-add", {"driver": "raw", "node-name": "ro", "read-only": True,
                               "file": {"driver": "file", "filename": str(tmp / "c.img")}})
    log.cmd("blockdev-mirror", {"job-id": "m", "device": "b", "target": "ro", "sync": "full"})
    # Failing at run time: the sizes differ.
    log.cmd("blockdev-mirror", {"job-id": "m", "device": "a", "target": "c", "sync": "full"})
    log.until_status("m", "null")
    # drive-mirror's own checks.
    target = str(tmp / "t.img")
    for change in (
        {"device": "nope"}, {"replaces": "a"}, {"format": "nosuch"},
        {"format": "null-co"}, {"mode": "existing"}, {"sync": "none"},
        {"target": str(tmp / "nodir" / "x.img")}, {"target": ""},
        {"node-name": "bad name"}, {"node-name": "a"}, {"job-id": None},
        {"granularity": 100},
    ):
        arguments = {"job-id": "d", "device": "a", "target": target, "sync": "full"}
        arguments.update(change)
        log.cmd("drive-mirror", {k: v for k, v in arguments.items() if v is not None})
        if os.path.exists(target):
            log.lines.append(f"(created {os.path.basename(target)})")
            os.unlink(target)
    log.settle(0.1)


def test_argument_errors_have_qsd_texts(qjobd: Callable[[], Transcript], tmp_path: Path) -> None:
    log = qjobd()
    _error_exchanges(log, tmp_path)
    replies = [json.loads(line[2:]) for line in log.lines
               if line.startswith("< {\"error\"")]
    descs = [reply["error"]["desc"] for reply in replies]
    assert descs[:len(BLOCKDEV_MIRROR_ERRORS)] == [text for _, text in BLOCKDEV_MIRROR_ERRORS]
    assert descs[len(BLOCKDEV_MIRROR_ERRORS):] == [
        "Parameter 'speed' expects a non-negative value",
        "Block node is read-only",
        "Cannot find device='nope' nor node-name='nope'",
        "a node-name must be provided when replacing a named node of the graph",
        "Unknown file format 'nosuch'",
        "Format driver 'null-co' does not support image creation",
        "Could not open '/tmp/X/t.img': No such file or directory",
        "Backing file not supported for file format 'raw'",
        "Could not create '/tmp/X/nodir/x.img': No such file or directory",
        "Could not create '': No such file or directory",
        "Invalid node-name: 'bad name'",
        "Duplicate nodes with node-name='a'",
        "Invalid job ID ''",
        "Parameter 'granularity' expects a value in range [512B, 64MB]",
    ]
    text = "\n".join(log.lines)
    # The failures after creation show the job coming and going.
    assert ('< {"event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "m"}}\n'
            '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "null", "id": "m"}}\n'
            '< {"error": {"class": "GenericError", "desc": "Block node is read-only"}}'
            ) in text
    assert ('< {"event": "BLOCK_JOB_COMPLETED", "data": {"device": "m", "len": 0, "offset": 0, '
            '"speed": 0, "type": "mirror", "error": "Source and target image have different '
            'sizes"}}') in text


# Section: differential runs against qemu-storage-daemon 7.2


@pytest.fixture
def both(qsd_socket: Path, qjobd_socket: Path,
         tmp_path: Path) -> Iterator[dict[str, tuple[Transcript, Path]]]:
    """A QSD and a qjobd, each with a transcript and its own image directory."""
    result: dict[str, tuple[Transcript, Path]] = {}
    try:
        for name, socket in (("qsd", qsd_socket), ("qjobd", qjobd_socket)):
            directory = tmp_path / name
            directory.mkdir()
            result[name] = (Transcript(socket, directory), directory)
        yield result
    finally:
        for log, _ in result.values():
            log.close()


_STATUS = re.compile(r'^< \{"event": "JOB_STATUS_CHANGE", "data": \{"status": "(\w+)", '
                     r'"id": "(.*)"\}\}$')


def without_drain_lines(lines: list[str]) -> list[str]:
    """Drop the paused/running (standby/ready) pairs QEMU emits when it drains a job
    around another command; they are not part of the contract."""
    out: list[str] = []
    for line in lines:
        match = _STATUS.match(line)
        before = _STATUS.match(out[-1]) if out else None
        if (match and before and match.group(2) == before.group(2)
                and (before.group(1), match.group(1)) in {("paused", "running"),
                                                          ("standby", "ready")}):
            out.pop()
            continue
        out.append(line)
    return out


def _differential(both: dict[str, tuple[Transcript, Path]],
                  scenario: Callable[[Transcript, Path], None]) -> dict[str, Path]:
    # A hole in the middle, so that sparseness is compared too.
    for _, directory in both.values():
        make_image(directory / "a.img", 16 * MiB, [(0, 4 * MiB), (6 * MiB, 10 * MiB)], seed=7)
    for log, directory in both.values():
        make_image(directory / "b.img", 16 * MiB)
        log.quiet("blockdev-add", raw_opts("a", directory / "a.img"))
        log.quiet("blockdev-add", raw_opts("b", directory / "b.img"))
        scenario(log, directory)
        log.settle(0.2)
    assert (without_drain_lines(both["qjobd"][0].lines)
            == without_drain_lines(both["qsd"][0].lines))
    return {name: directory for name, (_, directory) in both.items()}


def _ready(log: Transcript, job_id: str = "m", **extra: Any) -> None:
    log.cmd("blockdev-mirror", {"job-id": job_id, "device": "a", "target": "b",
                                 "sync": "full", **extra})
    log.until("BLOCK_JOB_READY")


def test_differential_ready_then_complete(both: dict[str, tuple[Transcript, Path]]) -> None:
    def scenario(log: Transcript, directory: Path) -> None:
        _ready(log)
        log.cmd("query-block-jobs")
        log.cmd("query-named-block-nodes", {"flat": False})
        log.cmd("block-job-complete", {"device": "m"})
        log.until_status("m", "null")
        log.cmd("query-named-block-nodes", {"flat": True})

    dirs = _differential(both, scenario)
    for directory in dirs.values():
        assert_same_content(directory / "a.img", directory / "b.img")
    assert_same_content(dirs["qsd"] / "b.img", dirs["qjobd"] / "b.img")


def test_differential_ready_then_block_job_cancel(both: dict[str, tuple[Transcript, Path]]) -> None:
    def scenario(log: Transcript, directory: Path) -> None:
        _ready(log, **{"auto-dismiss": False})
        log.cmd("block-job-cancel", {"device": "m"})
        log.until_status("m", "concluded")
        log.cmd("query-jobs")
        log.cmd("job-dismiss", {"id": "m"})
        log.cmd("query-named-block-nodes", {"flat": True})

    dirs = _differential(both, scenario)
    for directory in dirs.values():
        assert_same_content(directory / "a.img", directory / "b.img")


def test_differential_ready_then_job_cancel(both: dict[str, tuple[Transcript, Path]]) -> None:
    def scenario(log: Transcript, directory: Path) -> None:
        _ready(log, **{"auto-finalize": False})
        log.cmd("job-cancel", {"id": "m"})
        log.until_status("m", "null")
        log.cmd("query-block-jobs")

    dirs = _differential(both, scenario)
    assert_same_content(dirs["qsd"] / "b.img", dirs["qjobd"] / "b.img")


def test_differential_pause_resume_and_verbs_in_ready(
    both: dict[str, tuple[Transcript, Path]]
) -> None:
    def scenario(log: Transcript, directory: Path) -> None:
        make_image(directory / "c.img", 16 * MiB)
        log.quiet("blockdev-add", raw_opts("c", directory / "c.img"))
        _ready(log, **{"filter-node-name": "top"})
        # Nothing else may write the source (or the target) while the mirror runs.
        log.cmd("blockdev-backup", {"job-id": "bk", "device": "c", "target": "a",
                                     "sync": "full"})
        log.cmd("blockdev-backup", {"job-id": "bk", "device": "c", "target": "b",
                                     "sync": "full"})
        log.cmd("job-pause", {"id": "m"})
        log.cmd("job-pause", {"id": "m"})
        log.cmd("query-block-jobs")
        log.cmd("block-job-cancel", {"device": "m"})
        log.cmd("job-complete", {"id": "m"})  # accepted in standby: done on resume
        log.cmd("blockdev-del", {"node-name": "a"})
        log.cmd("blockdev-del", {"node-name": "b"})
        log.cmd("blockdev-del", {"node-name": "top"})
        log.cmd("blockdev-mirror", {"job-id": "m2", "device": "a", "target": "b",
                                     "sync": "full"})
        log.cmd("job-resume", {"id": "m"})
        log.until_status("m", "null")
        log.cmd("job-complete", {"id": "m"})

    dirs = _differential(both, scenario)
    assert_same_content(dirs["qsd"] / "b.img", dirs["qjobd"] / "b.img")


def test_differential_sync_none_and_drive_mirror(both: dict[str, tuple[Transcript, Path]]) -> None:
    def scenario(log: Transcript, directory: Path) -> None:
        log.cmd("blockdev-mirror", {"job-id": "n", "device": "a", "target": "b",
                                     "sync": "none"})
        log.cmd("query-jobs")
        log.cmd("block-job-cancel", {"device": "n"})
        log.until_status("n", "null")
        log.cmd("drive-mirror", {"job-id": "d", "device": "a",
                                  "target": str(directory / "d.img"), "sync": "top",
                                  "node-name": "dn", "mode": "absolute-paths"})
        log.until("BLOCK_JOB_READY")
        log.cmd("query-named-block-nodes", {"flat": True})
        log.cmd("blockdev-del", {"node-name": "dn"})
        log.cmd("job-complete", {"id": "d"})
        log.until_status("d", "null")
        log.cmd("query-named-block-nodes", {"flat": True})

    dirs = _differential(both, scenario)
    for directory in dirs.values():
        assert_same_content(directory / "a.img", directory / "d.img")


def test_differential_read_only_source_pivot(both: dict[str, tuple[Transcript, Path]]) -> None:
    """The target takes the read-only flag of the node it replaces, file child too."""
    def scenario(log: Transcript, directory: Path) -> None:
        make_image(directory / "r.img", 16 * MiB, data=True, seed=9)
        log.cmd("blockdev-add", {**raw_opts("r", directory / "r.img"), "read-only": True})
        log.cmd("blockdev-mirror", {"job-id": "m", "device": "r", "target": "b",
                                     "sync": "full", "granularity": 4096})
        log.until("BLOCK_JOB_READY")
        log.cmd("query-named-block-nodes", {"flat": True})
        log.cmd("job-complete", {"id": "m"})
        log.until_status("m", "null")
        log.cmd("query-named-block-nodes", {"flat": True})
        log.cmd("blockdev-mirror", {"job-id": "m", "device": "a", "target": "b",
                                     "sync": "full"})

    dirs = _differential(both, scenario)
    for directory in dirs.values():
        assert_same_content(directory / "r.img", directory / "b.img")


def test_differential_argument_errors(both: dict[str, tuple[Transcript, Path]]) -> None:
    for log, directory in both.values():
        _error_exchanges(log, directory)
    assert both["qjobd"][0].lines == both["qsd"][0].lines


# Section: robustness against a real qjobd


def _target_consistent(source: bytes, target: bytes, block: int = 4096) -> None:
    """Every block of the target is the source's or still zero."""
    zero = bytes(block)
    for offset in range(0, len(source), block):
        piece = target[offset:offset + block]
        assert piece in (source[offset:offset + block], zero), offset


def test_cancel_at_random_points(qjobd: Callable[[], Transcript], tmp_path: Path) -> None:
    log = qjobd()
    source = make_image(tmp_path / "a.img", 32 * MiB, data=True, seed=3)
    make_image(tmp_path / "b.img", 32 * MiB)
    before = digest(source)
    log.quiet("blockdev-add", raw_opts("a", source))
    log.quiet("blockdev-add", raw_opts("b", tmp_path / "b.img"))
    rng = random.Random(2024)
    verbs = [("job-cancel", {}), ("block-job-cancel", {}), ("block-job-cancel", {"force": True})]
    for round_number in range(6):
        job_id = f"m{round_number}"
        assert log.cmd("blockdev-mirror", {
            "job-id": job_id, "device": "a", "target": "b", "sync": "full",
            "speed": 64 * MiB, "buf-size": MiB,
        }) == {"return": {}}
        verb, extra = verbs[round_number % len(verbs)]
        if round_number == 4:
            log.until("BLOCK_JOB_READY")  # a soft cancel once surely in ready
        else:
            time.sleep(rng.uniform(0, 0.7))
        key = "id" if verb == "job-cancel" else "device"
        assert log.cmd(verb, {key: job_id, **extra}) == {"return": {}}
        mark = len(log.lines)
        log.until_status(job_id, "null")
        outcome = "\n".join(log.lines[mark:])
        assert log.cmd("query-jobs") == {"return": []}
        assert digest(source) == before
        copied = (tmp_path / "b.img").read_bytes()
        if "BLOCK_JOB_COMPLETED" in outcome:
            # Soft cancel of a ready mirror: a complete, consistent copy.
            assert copied == source.read_bytes()
        else:
            assert "BLOCK_JOB_CANCELLED" in outcome
            _target_consistent(source.read_bytes(), copied)
        os.truncate(tmp_path / "b.img", 0)
        os.truncate(tmp_path / "b.img", 32 * MiB)
    # Still serving, and a last mirror gets all the way.
    _ready(log, "last")
    log.cmd("job-complete", {"id": "last"})
    log.until_status("last", "null")
    assert_same_content(source, tmp_path / "b.img")
    assert digest(source) == before


def test_job_outlives_the_client_that_started_it(
    qjobd: Callable[[], Transcript], tmp_path: Path
) -> None:
    first = qjobd()
    source = make_image(tmp_path / "a.img", 16 * MiB, data=True)
    make_image(tmp_path / "b.img", 16 * MiB)
    first.quiet("blockdev-add", raw_opts("a", source))
    first.quiet("blockdev-add", raw_opts("b", tmp_path / "b.img"))
    first.cmd("blockdev-mirror", {"job-id": "m", "device": "a", "target": "b",
                                   "sync": "full", "speed": 4 * MiB, "buf-size": MiB})
    first.close()
    second = qjobd()
    jobs = second.cmd("query-jobs")["return"]
    assert [(job["id"], job["status"]) for job in jobs] == [("m", "running")]
    assert second.cmd("block-job-set-speed", {"device": "m", "speed": 0}) == {"return": {}}
    second.until("BLOCK_JOB_READY")
    second.cmd("block-job-complete", {"device": "m"})
    second.until_status("m", "null")
    assert_same_content(source, tmp_path / "b.img")


# Section: in process - writes to the source are followed


def mirror_options(*, job_id: str = "", speed: int = 0, **mirror: Any) -> MirrorOptions:
    """What the mirror handlers build, with QMP's defaults."""
    return MirrorOptions(common=BlockJobOptions(job_id, speed=speed), **mirror)


def start_mirror(engine: Engine, options: MirrorOptions) -> Job:
    """setup_mirror, then start the job as the handlers do."""
    job = setup_mirror(engine.graph, engine.manager, options)
    engine.manager.start(job)
    return job


def _writes(node: BlockNode, seed: int, count: int, size: int) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    done = []
    for _ in range(count):
        offset = rng.randrange(0, node.length() - size) // 512 * 512
        data = rng.randbytes(size) if rng.random() < 0.8 else bytes(size)
        if data.count(0) == size:
            node.write_zeroes(offset, size)
        else:
            node.pwrite(offset, data)
        done.append((offset, data))
    return done


async def test_writes_while_running_and_ready_are_mirrored(
    engine: Engine, tmp_path: Path
) -> None:
    graph, events = engine.graph, engine.events
    src_path = make_image(tmp_path / "src.img", 16 * MiB, data=True)
    dst_path = make_image(tmp_path / "dst.img", 16 * MiB)
    source = graph.add(raw_opts("src", src_path))
    target = graph.add(raw_opts("dst", dst_path))
    job = start_mirror(engine, mirror_options(
        source=source, target=target, sync="full", job_id="m", buf_size=MiB))
    # A writer racing with the first pass.
    await trio.to_thread.run_sync(_writes, source, 1, 200, 4096)
    await events.wait_status("m", "ready")
    assert job.progress_current == job.progress_total
    total = job.progress_total
    assert total >= 16 * MiB
    # Writes in ready: the job wakes up, copies them, the totals grow.
    await trio.to_thread.run_sync(_writes, source, 2, 50, 64 << 10)
    await events.wait_for(lambda: job.progress_total > total
                          and job.progress_current == job.progress_total
                          and isinstance(job.driver, MirrorDriver)
                          and job.driver.bitmap.count() == 0)
    assert job.status.value == "ready"
    source.pwrite(MiB + 17, b"last word")  # from the event-loop thread as well
    await events.wait_for(lambda: isinstance(job.driver, MirrorDriver)
                          and job.driver.bitmap.count() == 0 and not job.busy)
    job.user_complete()
    await events.wait_status("m", "null")
    assert events.statuses("m") == [
        "created", "running", "ready", "waiting", "pending", "concluded", "null"]
    assert dst_path.read_bytes() == src_path.read_bytes()
    # The graph is as before: no filter, no bitmap, the nodes free for anything.
    assert {node.node_name for node in graph if not node.generated_name} == {"src", "dst"}
    assert not any(node.format_name == "mirror_top" for node in graph)
    assert source.dirty_bitmaps == ()
    graph.delete("dst")
    graph.delete("src")


async def test_sync_none_copies_only_new_writes(
    engine: Engine, tmp_path: Path
) -> None:
    graph, manager, events = engine.graph, engine.manager, engine.events
    src_path = make_image(tmp_path / "src.img", 4 * MiB, data=True)
    dst_path = make_image(tmp_path / "dst.img", 4 * MiB)
    source = graph.add(raw_opts("src", src_path))
    target = graph.add(raw_opts("dst", dst_path))
    job = start_mirror(engine, mirror_options(
        source=source, target=target, sync="none", job_id="n"))
    await events.wait_status("n", "ready")
    assert (job.progress_current, job.progress_total) == (0, 0)
    await trio.to_thread.run_sync(source.pwrite, 2 * MiB, b"\x01" * 4096)
    await events.wait_for(lambda: job.progress_current == 64 << 10 == job.progress_total)
    manager.user_cancel(job, force=False)  # soft: finish without pivot, as a consistent copy
    await events.wait_status("n", "null")
    assert "BLOCK_JOB_COMPLETED" in events.names()
    copied = dst_path.read_bytes()
    granule = slice(2 * MiB, 2 * MiB + (64 << 10))
    assert copied[granule] == src_path.read_bytes()[granule]
    assert copied[:2 * MiB] == bytes(2 * MiB)
    assert copied[granule.stop:] == bytes(4 * MiB - granule.stop)


async def test_pivot_moves_the_source_users_to_the_target(
    engine: Engine, tmp_path: Path
) -> None:
    """A user of the source (here a backend) reads the target after complete."""
    graph, events = engine.graph, engine.events
    src_path = make_image(tmp_path / "src.img", 4 * MiB, data=True)
    dst_path = make_image(tmp_path / "dst.img", 4 * MiB)
    source = graph.add(raw_opts("src", src_path))
    target = graph.add(raw_opts("dst", dst_path))
    from qjobd.block import EdgeKind

    user = graph.acquire(source, "block device 'disk'", True, kind=EdgeKind.BACKEND)
    job = start_mirror(engine, mirror_options(
        source=source, target=target, sync="full", job_id="m"))
    top = next(node for node in graph if node.format_name == "mirror_top")
    assert user.node is top  # the filter took the source's users
    await events.wait_status("m", "ready")
    job.user_complete()
    await events.wait_status("m", "null")
    assert user.node is target
    assert source.parents == []
    assert graph.find(top.node_name) is None
    user.release()


async def test_cancel_before_ready_gives_the_users_back(
    engine: Engine, tmp_path: Path
) -> None:
    graph, manager, events = engine.graph, engine.manager, engine.events
    source = graph.add(raw_opts("src", make_image(tmp_path / "s.img", 8 * MiB, data=True)))
    target = graph.add(raw_opts("dst", make_image(tmp_path / "d.img", 8 * MiB)))
    from qjobd.block import EdgeKind

    user = graph.acquire(source, "block device 'disk'", False, kind=EdgeKind.BACKEND)
    job = start_mirror(engine, mirror_options(
        source=source, target=target, sync="full", job_id="m", speed=MiB, buf_size=MiB))
    await events.wait_for(lambda: job.progress_current > 0)
    manager.user_cancel(job, force=False)  # before ready every cancel is a forced one
    await events.wait_status("m", "null")
    assert events.statuses("m")[-3:] == ["aborting", "concluded", "null"]
    assert user.node is source
    assert [edge.kind for edge in source.parents] == [EdgeKind.BACKEND]
    user.release()


async def test_setup_failures_leave_the_graph_as_it_was(
    engine: Engine, tmp_path: Path
) -> None:
    graph, manager, events = engine.graph, engine.manager, engine.events
    source = graph.add(raw_opts("src", make_image(tmp_path / "s.img", MiB)))
    target = graph.add(raw_opts("dst", make_image(tmp_path / "d.img", MiB)))
    names = sorted(node.node_name for node in graph)
    for options, text in (
        (mirror_options(source=source, target=target, sync="full", job_id="bad id"),
         "Invalid job ID 'bad id'"),
        (mirror_options(source=source, target=target, sync="full", job_id="m", speed=-1),
         "Parameter 'speed' expects a non-negative value"),
        (mirror_options(source=source, target=target, sync="full", job_id="m",
                       filter_node_name="src"), "Duplicate nodes with node-name='src'"),
    ):
        with pytest.raises(QMPError, match=re.escape(text)):
            start_mirror(engine, options)
        assert sorted(node.node_name for node in graph) == names
        assert source.parents == []
        assert target.parents == []
        assert not graph.is_blocked(source)
        assert not graph.is_blocked(target)
        assert source.dirty_bitmaps == ()
    assert manager.jobs == {}
    job: Job = start_mirror(engine, mirror_options(
        source=source, target=target, sync="full", job_id="m"))
    await events.wait_status("m", "ready")
    manager.user_cancel(job, force=True)
    await events.wait_status("m", "null")

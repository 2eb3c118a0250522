"""blockdev-backup and drive-backup against a real qjobd (and qemu-storage-daemon).

The transcript sections of /work/shared/reference/qsd-7.2-transcripts.md are replayed
with the same replies (byte for byte where no timing is involved) and the same
JOB_STATUS_CHANGE sequence per job, minus QEMU's drain artifacts (paused/running
right after running).  The error texts and their order were recorded from
qemu-storage-daemon 7.2.  Images are checked with ``qemu-img compare``.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client, without_drain_pairs
from helpers.images import MiB, assert_same_content, digest, make_image, need_qemu_img

FULL = {"sync": "full"}


def backup(job: str, device: str = "src", target: str = "dst", **extra: Any) -> dict[str, Any]:
    return {"job-id": job, "device": device, "target": target, "sync": "full", **extra}


# Section: the recorded transcript sections


def test_backup_with_manual_finalize_and_dismiss(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    src = make_image(tmp_path / "src.raw", 64 * MiB, holes=True)
    dst = make_image(tmp_path / "dst.raw", 64 * MiB, fill=0x5A)
    with Client(qjobd_socket) as c:
        c.add_raw("src", src)
        c.add_raw("dst", dst)
        assert c.raw("blockdev-backup", backup(
            "j1", **{"auto-finalize": False, "auto-dismiss": False})) == '{"return": {}}'
        c.wait_event("BLOCK_JOB_PENDING", "j1")
        assert c.raw("query-jobs") == (
            '{"return": [{"current-progress": 67108864, "status": "pending", '
            '"total-progress": 67108864, "type": "backup", "id": "j1"}]}')
        assert c.raw("query-block-jobs") == (
            '{"return": [{"auto-finalize": false, "io-status": "ok", "device": "j1", '
            '"auto-dismiss": false, "busy": false, "len": 67108864, "offset": 67108864, '
            '"status": "pending", "paused": false, "speed": 0, "ready": false, '
            '"type": "backup"}]}')
        for verb in ("dismiss", "pause", "complete"):
            assert c.error(f"job-{verb}", {"id": "j1"}) == (
                f"Job 'j1' in state 'pending' cannot accept command verb '{verb}'")
        assert c.raw("job-finalize", {"id": "j1"}) == '{"return": {}}'
        # BLOCK_JOB_COMPLETED and concluded came before the reply.
        assert c.job_events("j1")[-2:] == [
            ("BLOCK_JOB_COMPLETED", {"device": "j1", "len": 67108864, "offset": 67108864,
                                     "speed": 0, "type": "backup"}),
            ("status", "concluded"),
        ]
        assert c.raw("query-jobs") == (
            '{"return": [{"current-progress": 67108864, "status": "concluded", '
            '"total-progress": 67108864, "type": "backup", "id": "j1"}]}')
        for verb in ("finalize", "cancel"):
            assert c.error(f"job-{verb}", {"id": "j1"}) == (
                f"Job 'j1' in state 'concluded' cannot accept command verb '{verb}'")
        assert c.raw("job-dismiss", {"id": "j1"}) == '{"return": {}}'
        assert c.statuses("j1")[-1] == "null"
        assert c.raw("query-jobs") == '{"return": []}'
        assert c.job_events("j1") == [
            ("status", "created"), ("status", "running"), ("status", "waiting"),
            ("status", "pending"), ("BLOCK_JOB_PENDING", {"type": "backup", "id": "j1"}),
            ("BLOCK_JOB_COMPLETED", {"device": "j1", "len": 67108864, "offset": 67108864,
                                     "speed": 0, "type": "backup"}),
            ("status", "concluded"), ("status", "null"),
        ]
        # The filter is gone and the nodes are free again.
        assert [n["node-name"] for n in c.ok("query-named-block-nodes")
                if n["drv"] == "copy-before-write"] == []
        c.ok("blockdev-del", {"node-name": "dst"})
    assert_same_content(src, dst)


def mask(line: str, *names: str) -> str:
    for name in names:
        line = re.sub(rf'"{name}": (\d+|true|false)', f'"{name}": X', line)
    return line


def test_rate_limited_backup_duplicate_pause_resume_speed_cancel(
    qjobd_socket: Path, tmp_path: Path
) -> None:
    src = make_image(tmp_path / "src.raw", 64 * MiB, data=True)
    dst = make_image(tmp_path / "dst.raw", 64 * MiB, data=True)
    before = digest(src)
    with Client(qjobd_socket) as c:
        c.add_raw("src", src)
        c.add_raw("dst", dst)
        assert c.raw("blockdev-backup", backup("j2", speed=1048576)) == '{"return": {}}'
        busy = "Node 'dst' is busy: block device is in use by block job: backup"
        assert c.error("blockdev-backup", backup("j2")) == busy
        assert c.error("blockdev-backup", backup("bad id!")) == busy
        assert c.raw("job-pause", {"id": "j2"}) == '{"return": {}}'
        c.wait_status("j2", "paused")
        assert c.error("job-pause", {"id": "j2"}) == "Job is already paused"
        assert mask(c.raw("query-jobs"), "current-progress") == (
            '{"return": [{"current-progress": X, "status": "paused", '
            '"total-progress": 67108864, "type": "backup", "id": "j2"}]}')
        assert c.raw("job-resume", {"id": "j2"}) == '{"return": {}}'
        c.wait_status("j2", "running")
        assert c.error("job-resume", {"id": "j2"}) == "Can't resume a job that was not paused"
        assert c.raw("block-job-set-speed", {"device": "j2", "speed": 2097152}) == (
            '{"return": {}}')
        assert c.error("block-job-set-speed", {"device": "j2", "speed": -1}) == (
            "Parameter 'speed' expects a non-negative value")
        assert c.error("job-complete", {"id": "j2"}) == (
            "Job 'j2' in state 'running' cannot accept command verb 'complete'")
        assert mask(c.raw("query-block-jobs"), "offset", "busy") == (
            '{"return": [{"auto-finalize": true, "io-status": "ok", "device": "j2", '
            '"auto-dismiss": true, "busy": X, "len": 67108864, "offset": X, '
            '"status": "running", "paused": false, "speed": 2097152, "ready": false, '
            '"type": "backup"}]}')
        assert c.raw("job-cancel", {"id": "j2"}) == '{"return": {}}'
        c.wait_status("j2", "null")
        events = c.job_events("j2")
        assert [name for name, _ in events if name != "status"] == ["BLOCK_JOB_CANCELLED"]
        cancelled = next(data for name, data in events if name == "BLOCK_JOB_CANCELLED")
        assert cancelled["offset"] % MiB == 0
        assert 0 < cancelled["offset"] < 64 * MiB
        assert {**cancelled, "offset": 0} == {
            "device": "j2", "len": 67108864, "offset": 0, "speed": 2097152, "type": "backup"}
        assert c.statuses("j2") == [
            "created", "running", "paused", "running", "aborting", "concluded", "null"]
        assert c.raw("query-block-jobs") == '{"return": []}'
    assert digest(src) == before


def test_default_job_id_and_drive_backup(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    a = make_image(tmp_path / "a.img", 32 * MiB, holes=True, seed=3)
    d = tmp_path / "d.img"
    with Client(qjobd_socket) as c:
        c.add_raw("a", a)
        assert c.error("blockdev-backup", {"device": "a", "target": "a", **FULL}) == (
            "Source and target cannot be the same")
        assert c.error("drive-backup", {"device": "a", "target": str(d), **FULL,
                                        "format": "raw"}) == "Invalid job ID ''"
        assert d.stat().st_size == 32 * MiB  # QEMU creates the image before that check
        assert c.raw("drive-backup", {"job-id": "db", "device": "a", "target": str(d), **FULL,
                                      "format": "raw", "mode": "absolute-paths"}) == (
            '{"return": {}}')
        c.wait_status("db", "null")
        assert c.job_events("db") == [
            ("status", "created"), ("status", "running"), ("status", "waiting"),
            ("status", "pending"),
            ("BLOCK_JOB_COMPLETED", {"device": "db", "len": 33554432, "offset": 33554432,
                                     "speed": 0, "type": "backup"}),
            ("status", "concluded"), ("status", "null"),
        ]
        # The target was opened for the job only.
        nodes = c.ok("query-named-block-nodes")
        assert sorted(n["file"] for n in nodes) == [str(a), str(a)]
    assert_same_content(a, d)
    # Holes stayed holes.
    assert d.stat().st_blocks * 512 <= a.stat().st_blocks * 512 + 64 * 1024


def test_on_source_error_stop_then_ignore(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    a = make_image(tmp_path / "a.img", 32 * MiB, data=True, seed=5)
    b = make_image(tmp_path / "b.img", 32 * MiB, fill=0)
    with Client(qjobd_socket) as c:
        c.add_blkdebug("a", a, [{"event": "read_aio", "errno": 5, "sector": 2048,
                                 "once": True}])
        c.add_raw("b", b)
        assert c.raw("blockdev-backup", {"job-id": "e1", "device": "a", "target": "b", **FULL,
                                         "on-source-error": "stop"}) == '{"return": {}}'
        c.wait_status("e1", "paused")
        assert c.job_events("e1") == [
            ("status", "created"), ("status", "running"),
            ("BLOCK_JOB_ERROR", {"device": "e1", "operation": "read", "action": "stop"}),
            ("status", "paused"),
        ]
        # Every chunk but the failed one was copied, as by QSD's parallel workers.
        assert c.raw("query-block-jobs") == (
            '{"return": [{"auto-finalize": true, "io-status": "failed", "device": "e1", '
            '"auto-dismiss": true, "busy": false, "len": 33554432, "offset": 32505856, '
            '"status": "paused", "paused": true, "speed": 0, "ready": false, '
            '"type": "backup"}]}')
        assert c.error("block-job-cancel", {"device": "e1"}) == (
            "The block job for device 'e1' is currently paused")
        assert c.raw("job-resume", {"id": "e1"}) == '{"return": {}}'
        c.wait_status("e1", "null")
        assert c.job_events("e1")[4:] == [
            ("status", "running"), ("status", "waiting"), ("status", "pending"),
            ("BLOCK_JOB_COMPLETED", {"device": "e1", "len": 33554432, "offset": 33554432,
                                     "speed": 0, "type": "backup"}),
            ("status", "concluded"), ("status", "null"),
        ]
        assert_same_content(a, b)
        # The rule fired once already: no error this time.
        assert c.raw("blockdev-backup", {"job-id": "e2", "device": "a", "target": "b", **FULL,
                                         "on-source-error": "ignore"}) == '{"return": {}}'
        c.wait_status("e2", "null")
        assert c.statuses("e2") == [
            "created", "running", "waiting", "pending", "concluded", "null"]
        assert [name for name, _ in c.job_events("e2")] == [
            "status"] * 4 + ["BLOCK_JOB_COMPLETED", "status", "status"]


# Section: error policies (recorded from QSD 7.2)


ERROR_POLICIES = [
    # side, errno, policy, BLOCK_JOB_ERROR action, io-status while stopped
    ("read", 5, "report", "report", None),
    ("read", 5, "enospc", "report", None),
    ("read", 5, "auto", "report", None),
    ("read", 28, "enospc", "stop", "nospace"),
    ("read", 5, "ignore", "ignore", None),
    ("write", 28, "enospc", "stop", "nospace"),
    ("write", 5, "stop", "stop", "failed"),
    ("write", 5, "report", "report", None),
]


def test_error_policies(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    with Client(qjobd_socket) as c:
        for case, (side, errno, policy, action, io_status) in enumerate(ERROR_POLICIES):
            a = make_image(tmp_path / f"a{case}.img", 32 * MiB, data=True, seed=case)
            b = make_image(tmp_path / f"b{case}.img", 32 * MiB, data=True)
            rule = {"event": f"{side}_aio", "errno": errno, "once": True,
                    "sector": 2048 if side == "read" else 4096}
            if side == "read":
                c.add_blkdebug(f"a{case}", a, [rule])
                c.add_raw(f"b{case}", b)
            else:
                c.add_raw(f"a{case}", a)
                c.add_blkdebug(f"b{case}", b, [rule])
            key = "on-source-error" if side == "read" else "on-target-error"
            job = f"j{case}"
            c.ok("blockdev-backup", {"job-id": job, "device": f"a{case}",
                                     "target": f"b{case}", **FULL, key: policy})
            error = c.wait_event("BLOCK_JOB_ERROR", job)
            assert error["data"] == {"device": job, "operation": side, "action": action}
            if action == "stop":
                c.wait_status(job, "paused")
                info = c.ok("query-block-jobs")[0]
                assert (info["io-status"], info["offset"], info["paused"]) == (
                    io_status, 32505856, True)
                c.ok("job-resume", {"id": job})
            c.wait_status(job, "null")
            end = [data for name, data in c.job_events(job) if name.startswith("BLOCK_JOB_C")]
            if action == "report":
                assert c.statuses(job) == [
                    "created", "running", "aborting", "concluded", "null"]
                assert end == [{"device": job, "len": 33554432, "offset": 32505856,
                                "speed": 0, "type": "backup", "error": "Input/output error"}]
            else:
                assert c.statuses(job)[-4:] == ["waiting", "pending", "concluded", "null"]
                assert end == [{"device": job, "len": 33554432, "offset": 33554432,
                                "speed": 0, "type": "backup"}]
                assert_same_content(a, b)


def test_persistent_error_with_ignore_retries_until_cancelled(
    qjobd_socket: Path, tmp_path: Path
) -> None:
    a = make_image(tmp_path / "a.img", 8 * MiB, data=True, seed=8)
    b = make_image(tmp_path / "b.img", 8 * MiB, data=True)
    with Client(qjobd_socket) as c:
        c.add_blkdebug("a", a, [{"event": "read_aio", "errno": 5, "sector": 2048}])
        c.add_raw("b", b)
        c.ok("blockdev-backup", {"job-id": "j", "device": "a", "target": "b", **FULL,
                                 "on-source-error": "ignore"})
        c.wait_event("BLOCK_JOB_ERROR", "j")
        time.sleep(0.35)
        info = c.ok("query-jobs")[0]
        assert info["status"] == "running"
        assert info["current-progress"] == 7 * MiB
        c.ok("job-cancel", {"id": "j"})
        c.wait_status("j", "null")
        errors = [n for n, _ in c.job_events("j") if n == "BLOCK_JOB_ERROR"]
        assert 2 <= len(errors) <= 10  # retried, but not in a busy loop


# Section: argument checks (texts and order recorded from QSD 7.2)


@pytest.fixture
def nodes(qjobd_socket: Path, tmp_path: Path) -> Any:
    a = make_image(tmp_path / "a.img", 32 * MiB, data=True, seed=1)
    with Client(qjobd_socket) as c:
        c.add_raw("a", a)
        c.add_raw("b", make_image(tmp_path / "b.img", 32 * MiB, data=True))
        c.add_raw("c", make_image(tmp_path / "c.img", 16 * MiB, data=True))
        c.add_raw("ro", make_image(tmp_path / "ro.img", 32 * MiB, data=True), **{"read-only": True})
        yield c, tmp_path


def ab(**extra: Any) -> dict[str, Any]:
    return {"job-id": "j", "device": "a", "target": "b", "sync": "full", **extra}


BLOCKDEV_BACKUP_ERRORS = [
    ({"device": "nosuch"}, "Cannot find device='nosuch' nor node-name='nosuch'"),
    ({"target": "nosuch"}, "Cannot find device='nosuch' nor node-name='nosuch'"),
    ({"target": "c"}, "Source and target image have different sizes"),
    ({"target": "a"}, "Source and target cannot be the same"),
    ({"sync": "incremental"}, "must provide a valid bitmap name for 'incremental' sync mode"),
    ({"sync": "bitmap"}, "must provide a valid bitmap name for 'bitmap' sync mode"),
    ({"sync": "bitmap", "bitmap": "bm"}, "Bitmap 'bm' could not be found"),
    ({"bitmap-mode": "never"}, "Cannot specify bitmap sync mode without a bitmap"),
    ({"bitmap": "bm"}, "Bitmap 'bm' could not be found"),
    ({"sync": "incremental", "bitmap": "bm", "bitmap-mode": "never"},
     "Bitmap sync mode must be 'on-success' when using sync mode 'incremental'"),
    # The bitmap checks come before the source/target ones.
    ({"target": "a", "sync": "bitmap"}, "must provide a valid bitmap name for 'bitmap' sync mode"),
    ({"compress": True}, "Compression is not supported for this drive "),
    ({"compress": True, "target": "c"}, "Compression is not supported for this drive "),
    ({"x-perf": {"max-workers": 0}}, "max-workers must be between 1 and 2147483647"),
    ({"x-perf": {"max-chunk": -1}}, "max-chunk must be zero (which means no limit) or positive"),
    ({"x-perf": {"max-chunk": 1024}},
     "Required max-chunk (1024) is less than backup cluster size (65536)"),
    ({"job-id": "bad id", "filter-node-name": "bad name"},
     "Could not create node: Invalid node-name: 'bad name'"),
    ({"job-id": "bad id", "filter-node-name": "a"},
     "Could not create node: Duplicate nodes with node-name='a'"),
    ({"job-id": "bad id", "filter-node-name": "x" * 40},
     "Could not create node: Node name too long"),
    ({"job-id": "bad id"}, "Invalid job ID 'bad id'"),
    ({"job-id": None, "speed": -5}, "Invalid job ID ''"),
    ({"target": "ro"}, "Could not create node: Block node is read-only"),
]


def test_blockdev_backup_errors(nodes: Any) -> None:
    c, _ = nodes
    before = c.ok("query-named-block-nodes")
    for change, desc in BLOCKDEV_BACKUP_ERRORS:
        arguments = {key: value for key, value in ab(**change).items() if value is not None}
        assert c.error("blockdev-backup", arguments) == desc, change
        assert c.ok("query-named-block-nodes") == before
    assert c.events == []
    assert c.ok("query-jobs") == []


def test_negative_speed_creates_then_drops_the_job(nodes: Any) -> None:
    c, _ = nodes
    assert c.error("blockdev-backup", ab(speed=-1)) == (
        "Parameter 'speed' expects a non-negative value")
    assert c.statuses("j") == ["created", "null"]
    assert [n["drv"] for n in c.ok("query-named-block-nodes")].count("copy-before-write") == 0


def test_busy_nodes_and_the_filter(nodes: Any) -> None:
    c, tmp_path = nodes
    c.add_raw("d", make_image(tmp_path / "d.img", 32 * MiB, data=True))
    c.ok("blockdev-backup", ab(speed=1024, **{"filter-node-name": "flt"}))
    filters = [n for n in c.ok("query-named-block-nodes", {"flat": True})
               if n["drv"] == "copy-before-write"]
    assert [(n["node-name"], n["file"]) for n in filters] == [("flt", str(tmp_path / "a.img"))]
    # After the busy check comes the one on ids; the same source is fine.
    assert c.error("blockdev-backup", ab(target="c")) == (
        "Source and target image have different sizes")
    assert c.error("blockdev-backup", ab(target="d")) == "Job ID 'j' already in use"
    assert c.error("blockdev-backup", ab(device="b", target="a")) == (
        "Node 'b' is busy: block device is in use by block job: backup")
    assert c.error("blockdev-del", {"node-name": "b"}) == (
        "Node 'b' is busy: block device is in use by block job: backup")
    assert c.error("blockdev-del", {"node-name": "a"}) == "Block device a is in use"
    assert c.error("blockdev-del", {"node-name": "flt"}) == (
        "Node 'flt' is busy: block device is in use by block job: backup")
    # A second backup of the same source stacks a second filter.
    c.ok("blockdev-backup", ab(**{"job-id": "k", "target": "d", "speed": 1024}))
    assert [n["drv"] for n in c.ok("query-named-block-nodes")].count("copy-before-write") == 2
    c.ok("job-cancel", {"id": "j"})
    c.wait_status("j", "null")
    c.ok("job-cancel", {"id": "k"})
    c.wait_status("k", "null")
    assert [n["drv"] for n in c.ok("query-named-block-nodes")].count("copy-before-write") == 0
    for node in ("a", "b", "d"):
        c.ok("blockdev-del", {"node-name": node})


def test_sync_top_of_a_raw_source_copies_all_and_none_waits_for_cancel(nodes: Any) -> None:
    c, tmp_path = nodes
    c.ok("blockdev-backup", ab(sync="top", **{"auto-dismiss": False}))
    c.wait_status("j", "concluded")
    assert c.ok("query-jobs") == [{"current-progress": 33554432, "status": "concluded",
                                   "total-progress": 33554432, "type": "backup", "id": "j"}]
    c.ok("job-dismiss", {"id": "j"})
    assert_same_content(tmp_path / "a.img", tmp_path / "b.img")
    c.ok("blockdev-backup", ab(sync="none", **{"job-id": "n"}))
    c.settle(0.3)
    info = c.ok("query-block-jobs")[0]
    assert (info["status"], info["len"], info["offset"]) == ("running", 33554432, 0)
    c.ok("job-cancel", {"id": "n"})
    c.wait_status("n", "null")
    assert c.job_events("n")[-3][0] == "BLOCK_JOB_CANCELLED"


def test_odd_sized_source_counts_whole_clusters(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    size = 100 * 1024 + 512
    a = make_image(tmp_path / "a.img", size, data=True, seed=2)
    b = make_image(tmp_path / "b.img", size, data=True)
    with Client(qjobd_socket) as c:
        c.add_raw("a", a)
        c.add_raw("b", b)
        c.ok("blockdev-backup", ab(**{"auto-dismiss": False}))
        c.wait_status("j", "concluded")
        assert c.raw("query-block-jobs") == (
            '{"return": [{"auto-finalize": true, "io-status": "ok", "device": "j", '
            '"auto-dismiss": false, "busy": false, "len": 131072, "offset": 131072, '
            '"status": "concluded", "paused": false, "speed": 0, "ready": false, '
            '"type": "backup"}]}')
        c.ok("job-dismiss", {"id": "j"})
    assert_same_content(a, b)


# Section: drive-backup's own checks


def test_drive_backup_errors(nodes: Any) -> None:
    c, tmp_path = nodes
    t = str(tmp_path)
    make_image(tmp_path / "ex.img", 32 * MiB)
    make_image(tmp_path / "small.img", MiB)
    qcow2 = tmp_path / "q.qcow2"
    qcow2.write_bytes(b"QFI\xfb" + bytes(508))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"device": "nosuch", "target": t + "/x"}, "Cannot find device='nosuch' nor "
         "node-name='nosuch'"),
        ({"target": t + "/nodir/x.img"},
         f"Could not create '{t}/nodir/x.img': No such file or directory"),
        ({"target": t + "/e.img", "mode": "existing"},
         f"Could not open '{t}/e.img': No such file or directory"),
        ({"target": t + "/q.img", "format": "nosuch"}, "Unknown file format 'nosuch'"),
        ({"target": t + "/q.img", "format": "null-co"},
         "Format driver 'null-co' does not support image creation"),
        ({"target": t + "/q.img", "format": "blkdebug"},
         "Format driver 'blkdebug' does not support image creation"),
        ({"target": t + "/q.img", "sync": "none", "format": "raw"},
         "Backing file not supported for file format 'raw'"),
        ({"target": t + "/ex.img", "mode": "existing", "format": "nosuch"},
         "Unknown driver 'nosuch'"),
        ({"target": t + "/ex.img", "mode": "existing", "format": "null-co"},
         "The only allowed filename for this driver is 'null-co://'"),
        ({"target": t + "/small.img", "mode": "existing", "format": "raw"},
         "Source and target image have different sizes"),
        ({"target": t, "mode": "existing", "format": "raw"}, f"Could not open '{t}': "
         "Is a directory"),
        ({"target": t, "format": "raw"}, f"Could not create '{t}': Is a directory"),
        ({"target": t + "/q2.img", "format": "raw", "job-id": "bad id"},
         "Invalid job ID 'bad id'"),
        ({"target": t + "/q3.img", "format": "raw", "sync": "incremental"},
         "must provide a valid bitmap name for 'incremental' sync mode"),
        ({"target": t + "/q4.img", "format": "raw", "compress": True},
         "Compression is not supported for this drive "),
        # qcow2's magic with version 0 is probed as raw, as QEMU probes it.
        ({"target": str(qcow2), "mode": "existing"},
         "Source and target image have different sizes"),
    ]
    before = c.ok("query-named-block-nodes")
    for change, desc in cases:
        arguments = {"job-id": "d", "device": "a", "sync": "full", **change}
        assert c.error("drive-backup", arguments) == desc, change
        assert c.ok("query-named-block-nodes") == before
    # QEMU creates the image before the later checks fail.
    for name in ("q2.img", "q3.img", "q4.img"):
        assert (tmp_path / name).stat().st_size == 32 * MiB
    assert c.events == []


def test_drive_backup_sync_none_on_existing_raw(nodes: Any) -> None:
    c, tmp_path = nodes
    make_image(tmp_path / "ex.img", 32 * MiB)
    desc = c.error("drive-backup", {"job-id": "d", "device": "a", "sync": "none",
                                    "target": str(tmp_path / "ex.img"), "mode": "existing"})
    assert re.fullmatch(r"Driver 'raw' of node '#block\d+' does not support backing files",
                        desc), desc


def test_drive_backup_existing_and_file_format(nodes: Any) -> None:
    c, tmp_path = nodes
    need_qemu_img()
    target = make_image(tmp_path / "ex.img", 32 * MiB, fill=0x77)
    c.ok("drive-backup", {"job-id": "d", "device": "a", "target": str(target), "sync": "full",
                          "mode": "existing", "speed": 1})
    nodes_now = c.ok("query-named-block-nodes", {"flat": True})
    opened = [(n["drv"], n["detect_zeroes"]) for n in nodes_now if n["file"] == str(target)]
    assert opened == [("raw", "unmap"), ("file", "off")]
    c.ok("block-job-set-speed", {"device": "d", "speed": 0})
    c.wait_status("d", "null")
    assert_same_content(tmp_path / "a.img", target)
    big = make_image(tmp_path / "big.img", 64 * MiB)
    c.ok("drive-backup", {"job-id": "f", "device": "a", "target": str(big), "sync": "full",
                          "format": "file"})
    c.wait_status("f", "null")
    assert big.stat().st_size == 32 * MiB  # absolute-paths recreates it
    assert_same_content(tmp_path / "a.img", big)
    assert len(c.ok("query-named-block-nodes")) == len(nodes_now) - 3


# Section: robustness


def test_cancel_at_random_points(qjobd_socket: Path, tmp_path: Path) -> None:
    """The source is never written; every target chunk is wholly old or wholly new."""
    size = 24 * MiB
    src = make_image(tmp_path / "src.raw", size, holes=True, seed=11)
    source_digest = digest(src)
    rng = random.Random(1234)
    with Client(qjobd_socket) as c:
        c.add_raw("src", src)
        for attempt in range(8):
            dst = make_image(tmp_path / f"dst{attempt}.raw", size, fill=0xEE)
            c.add_raw(f"dst{attempt}", dst)
            speed = rng.choice([0, 64 * MiB, 256 * MiB])
            c.ok("blockdev-backup", backup(f"c{attempt}", target=f"dst{attempt}",
                                           speed=speed))
            time.sleep(rng.uniform(0, 0.08))
            reply = c.cmd("job-cancel", {"id": f"c{attempt}"})
            assert reply == {"return": {}} or reply["error"]["desc"] in (
                "Job not found",
                f"Job 'c{attempt}' in state 'pending' cannot accept command verb 'cancel'")
            c.wait_status(f"c{attempt}", "null")
            assert c.ok("query-jobs") == []
            c.ok("blockdev-del", {"node-name": f"dst{attempt}"})
            data, old, new = dst.read_bytes(), b"\xee" * MiB, src.read_bytes()
            for offset in range(0, size, MiB):
                chunk = data[offset:offset + MiB]
                assert chunk in (old, new[offset:offset + MiB]), (attempt, offset)
    assert digest(src) == source_digest


def test_job_outlives_its_client(qjobd_socket: Path, tmp_path: Path) -> None:
    need_qemu_img()
    src = make_image(tmp_path / "src.raw", 16 * MiB, data=True, seed=12)
    dst = make_image(tmp_path / "dst.raw", 16 * MiB, data=True)
    first = Client(qjobd_socket)
    first.add_raw("src", src)
    first.add_raw("dst", dst)
    first.ok("blockdev-backup", backup("k", speed=32 * MiB, **{"auto-dismiss": False}))
    first.wire.sock.shutdown(socket.SHUT_RDWR)
    first.close()
    with Client(qjobd_socket) as second:
        deadline = time.monotonic() + 20
        while second.ok("query-jobs")[0]["status"] != "concluded":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second.ok("job-dismiss", {"id": "k"})
    assert_same_content(src, dst)


def test_other_clients_are_served_during_a_backup(qjobd_socket: Path, tmp_path: Path) -> None:
    src = make_image(tmp_path / "src.raw", 64 * MiB, data=True, seed=13)
    dst = make_image(tmp_path / "dst.raw", 64 * MiB, data=True)
    latencies: list[float] = []
    with Client(qjobd_socket) as c:
        c.add_raw("src", src)
        c.add_raw("dst", dst)
        c.ok("blockdev-backup", backup("b"))

        def poll() -> None:
            with Client(qjobd_socket) as other:
                for _ in range(20):
                    began = time.monotonic()
                    other.ok("query-jobs")
                    latencies.append(time.monotonic() - began)

        thread = threading.Thread(target=poll)
        thread.start()
        thread.join(30)
        c.wait_status("b", "null")
    assert len(latencies) == 20
    assert max(latencies) < 1.0


# Section: differential tests against qemu-storage-daemon


def scenario_manual_finalize(c: Client, directory: Path) -> list[str]:
    src = make_image(directory / "src.raw", 32 * MiB, holes=True, seed=21)
    make_image(directory / "dst.raw", 32 * MiB, fill=0x11)
    c.add_raw("src", src)
    c.add_raw("dst", directory / "dst.raw")
    replies = [c.raw("blockdev-backup", backup("j1", **{"auto-finalize": False,
                                                        "auto-dismiss": False}))]
    c.wait_event("BLOCK_JOB_PENDING", "j1")
    for command, arguments in [("query-jobs", None), ("query-block-jobs", None),
                               ("job-dismiss", {"id": "j1"}), ("job-complete", {"id": "j1"}),
                               ("job-finalize", {"id": "j1"}), ("query-jobs", None),
                               ("job-cancel", {"id": "j1"}), ("job-dismiss", {"id": "j1"}),
                               ("query-jobs", None)]:
        replies.append(c.raw(command, arguments))
    c.ok("blockdev-del", {"node-name": "dst"})
    return replies


def scenario_pause_resume_speed_cancel(c: Client, directory: Path) -> list[str]:
    make_image(directory / "src.raw", 32 * MiB, data=True, seed=22)
    make_image(directory / "dst.raw", 32 * MiB, data=True)
    c.add_raw("src", directory / "src.raw")
    c.add_raw("dst", directory / "dst.raw")
    replies = [c.raw("blockdev-backup", backup("j2", speed=MiB)),
               c.raw("blockdev-backup", backup("j2"))]
    mark = c.mark()
    replies.append(c.raw("job-pause", {"id": "j2"}))
    c.wait_status("j2", "paused", after=mark)
    replies += [c.raw("job-pause", {"id": "j2"}),
                mask(c.raw("query-jobs"), "current-progress")]
    mark = c.mark()
    replies.append(c.raw("job-resume", {"id": "j2"}))
    c.wait_status("j2", "running", after=mark)
    replies += [c.raw("job-resume", {"id": "j2"}),
                c.raw("block-job-set-speed", {"device": "j2", "speed": 2 * MiB}),
                c.raw("block-job-set-speed", {"device": "j2", "speed": -1}),
                c.raw("job-complete", {"id": "j2"}),
                c.raw("block-job-cancel", {"device": "j2"})]
    c.wait_status("j2", "null")
    replies.append(c.raw("query-block-jobs"))
    return replies


def scenario_stop_then_resume(c: Client, directory: Path) -> list[str]:
    a = make_image(directory / "a.img", 32 * MiB, data=True, seed=23)
    make_image(directory / "dst.raw", 32 * MiB, fill=0x22)
    c.add_blkdebug("a", a, [{"event": "read_aio", "errno": 5, "sector": 4096, "once": True}])
    c.add_raw("dst", directory / "dst.raw")
    replies = [c.raw("blockdev-backup", {"job-id": "e1", "device": "a", "target": "dst",
                                         **FULL, "on-source-error": "stop"})]
    c.wait_event("BLOCK_JOB_ERROR", "e1")
    c.wait_status("e1", "paused", after=c.events.index(c.wait_event("BLOCK_JOB_ERROR", "e1")))
    replies += [c.raw("query-block-jobs"), c.raw("job-resume", {"id": "e1"})]
    c.wait_status("e1", "null")
    return replies


def normalized(c: Client, job: str) -> list[tuple[str, Any]]:
    """The job's statuses without drain artifacts, then its other events in order."""
    others = [(name, data) for name, data in c.job_events(job) if name != "status"]
    return [("statuses", without_drain_pairs(c.statuses(job))), *others]


@pytest.mark.parametrize("scenario", [scenario_manual_finalize,
                                      scenario_pause_resume_speed_cancel,
                                      scenario_stop_then_resume])
def test_same_as_qsd(qjobd_socket: Path, qsd_socket: Path, tmp_path: Path,
                     scenario: Any) -> None:
    need_qemu_img()
    results = {}
    for name, path in (("qsd", qsd_socket), ("qjobd", qjobd_socket)):
        directory = tmp_path / name
        directory.mkdir()
        with Client(path) as c:
            replies = scenario(c, directory)
            jobs = sorted({e["data"].get("id") or e["data"].get("device") for e in c.events})
            events = {job: normalized(c, job) for job in jobs}
        results[name] = (replies, events, directory)
    (q_replies, q_events, q_dir), (j_replies, j_events, j_dir) = results["qsd"], results["qjobd"]
    assert j_replies == q_replies
    if scenario is scenario_pause_resume_speed_cancel:
        # Where a cancel lands is timing.
        for events in (q_events, j_events):
            for entries in events.values():
                for _, data in entries[1:]:
                    data.pop("offset", None)
    assert j_events == q_events
    if scenario is not scenario_pause_resume_speed_cancel:
        assert_same_content(j_dir / "dst.raw", q_dir / "dst.raw")


@pytest.mark.parametrize("target_state", ["fresh", "full of other data"])
def test_sparse_source_with_uneven_holes(qjobd_socket: Path, tmp_path: Path,
                                         target_state: str) -> None:
    """Holes skipped a whole run at a time must still read as zeroes on any target.

    The source has a leading hole, data straddling chunk boundaries, a hole that
    starts and ends inside chunks, and data in its last partial chunk.
    """
    size = 9 * MiB + 4096
    source = make_image(tmp_path / "sparse.raw", size, [
        (3 * MiB - 4096, 8192), (5 * MiB + 12345, 300000), (size - 5000, 5000)])
    target = make_image(tmp_path / "target.raw", size, data=target_state != "fresh", seed=1)
    with Client(qjobd_socket) as c:
        c.add_raw("s", source)
        c.add_raw("t", target)
        c.ok("blockdev-backup", {"job-id": "b", "device": "s", "target": "t", **FULL})
        c.wait_status("b", "null")
    assert_same_content(source, target)
    if target_state == "fresh":
        assert target.stat().st_blocks * 512 <= source.stat().st_blocks * 512 + MiB

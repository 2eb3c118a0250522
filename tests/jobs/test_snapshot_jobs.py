"""snapshot-save, snapshot-load and snapshot-delete against a real qjobd.

qemu-storage-daemon has no such jobs (they come from QEMU's migration schema), so
the oracle is qemu-img: ``qemu-img snapshot -l`` must list what the jobs made, and
``qemu-img snapshot -a`` on a copy must give the image snapshot-load gives.  Every
refusal must leave every image as it was.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Client
from helpers.daemons import kill_9_after
from helpers.images import MiB
from helpers.qcow2 import (
    check,
    check_status,
    make_qcow2,
    qcow2_opts,
    qemu_io,
    run,
    snapshot_listing,
)


def names(image: Path) -> list[str]:
    return [name for _, name in snapshot_listing(image)]


def disks(directory: Path, count: int = 2) -> list[Path]:
    made = []
    for index in range(count):
        image = make_qcow2(directory / f"d{index}.qcow2", 4 * MiB)
        qemu_io(image, f"write -P {index + 1} 0 1M")
        made.append(image)
    return made


def run_job(c: Client, command: str, **arguments: Any) -> dict[str, Any]:
    """Start a snapshot job, wait until it concludes, return its JobInfo, dismiss it."""
    job = arguments["job-id"]
    assert c.raw(command, arguments) == '{"return": {}}'
    c.wait_status(job, "concluded")
    (info,) = [j for j in c.ok("query-jobs") if j["id"] == job]
    c.ok("job-dismiss", {"id": job})
    return info


def test_save_load_delete_on_two_devices(qjobd_socket: Path, tmp_path: Path) -> None:
    images = disks(tmp_path)
    with Client(qjobd_socket) as c:
        for index, image in enumerate(images):
            c.ok("blockdev-add", qcow2_opts(f"d{index}", image))
        info = run_job(c, "snapshot-save", **{"job-id": "s", "tag": "t1", "vmstate": "d0",
                                               "devices": ["d0", "d1"]})
        assert info == {"current-progress": 1, "status": "concluded", "total-progress": 1,
                        "type": "snapshot-save", "id": "s"}
        assert c.statuses("s") == ["created", "running", "waiting", "pending", "concluded",
                                   "null"]
        assert {e["event"] for e in c.events} == {"JOB_STATUS_CHANGE"}
        snaps = c.ok("query-named-block-nodes", {"flat": True})
        listed = {n["node-name"]: [s["name"] for s in n["image"].get("snapshots", [])]
                  for n in snaps}
        assert listed["d0"] == listed["d1"] == ["t1"]
        # Change both disks through a mirror's worth of writes: a backup into them.
        source = make_qcow2(tmp_path / "new.qcow2", 4 * MiB)
        qemu_io(source, "write -P 9 512k 1M")
        c.ok("blockdev-add", qcow2_opts("src", source, **{"read-only": True}))
        for index in range(2):
            c.ok("blockdev-backup", {"job-id": f"b{index}", "device": "src",
                                     "target": f"d{index}", "sync": "full"})
            c.wait_status(f"b{index}", "null")
        info = run_job(c, "snapshot-load", **{"job-id": "l", "tag": "t1", "vmstate": "d1",
                                               "devices": ["d0", "d1"]})
        assert "error" not in info
        c.ok("blockdev-del", {"node-name": "d0"})
        c.ok("blockdev-del", {"node-name": "d1"})
    for index, image in enumerate(images):
        check(image)
        expected = tmp_path / f"expected{index}.qcow2"
        theirs = make_qcow2(expected, 4 * MiB)
        qemu_io(theirs, f"write -P {index + 1} 0 1M")
        run("qemu-img", "compare", str(image), str(theirs))
        assert names(image) == ["t1"]
    with Client(qjobd_socket) as c:
        for index, image in enumerate(images):
            c.ok("blockdev-add", qcow2_opts(f"d{index}", image))
        info = run_job(c, "snapshot-delete", **{"job-id": "x", "tag": "t1",
                                                 "devices": ["d0", "d1"]})
        assert "error" not in info
        # Deleting a tag that is gone is no error (nothing has it).
        assert "error" not in run_job(c, "snapshot-delete", **{
            "job-id": "y", "tag": "t1", "devices": ["d0", "d1"]})
    for image in images:
        assert names(image) == []
        report = check(image)
        assert report.get("leaks", 0) == 0


def test_load_gives_what_qemu_img_snapshot_apply_gives(qjobd_socket: Path,
                                                        tmp_path: Path) -> None:
    (image,) = disks(tmp_path, 1)
    run("qemu-img", "snapshot", "-c", "made-by-qemu", str(image))
    qemu_io(image, "write -P 7 100k 2M", "write -z 3M 64k")
    theirs = tmp_path / "theirs.qcow2"
    shutil.copy(image, theirs)
    run("qemu-img", "snapshot", "-a", "made-by-qemu", str(theirs))
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("d", image))
        info = run_job(c, "snapshot-load", **{"job-id": "l", "tag": "made-by-qemu",
                                               "vmstate": "d", "devices": ["d"]})
        assert "error" not in info
        c.ok("blockdev-del", {"node-name": "d"})
    check(image)
    run("qemu-img", "compare", str(image), str(theirs))


REFUSALS = [
    ("snapshot-save", {"tag": "t", "vmstate": "d0", "devices": []},
     "At least one device is required for snapshot"),
    ("snapshot-save", {"tag": "t", "vmstate": "d0", "devices": ["d0", "nope"]},
     "No block device node 'nope'"),
    ("snapshot-save", {"tag": "t", "vmstate": "d0", "devices": ["d0", "r"]},
     "Device 'r' is writable but does not support snapshots"),
    ("snapshot-save", {"tag": "t", "vmstate": "d0", "devices": ["d0", "ro"]},
     "Device 'ro' is writable but does not support snapshots"),
    ("snapshot-save", {"tag": "t", "vmstate": "elsewhere", "devices": ["d0", "d1"]},
     "vmstate block device 'elsewhere' does not exist"),
    ("snapshot-save", {"tag": "only-d1", "vmstate": "d0", "devices": ["d0", "d1"]},
     "Snapshot 'only-d1' already exists in one or more devices"),
    ("snapshot-load", {"tag": "only-d1", "vmstate": "d1", "devices": ["d0", "d1"]},
     "Snapshot 'only-d1' does not exist in one or more devices"),
    ("snapshot-load", {"tag": "only-d1", "vmstate": "d0", "devices": ["d1"]},
     "vmstate block device 'd0' does not exist"),
    ("snapshot-delete", {"tag": "only-d1", "devices": ["d1", "r"]},
     "Device 'r' is writable but does not support snapshots"),
]


@pytest.mark.parametrize(("command", "arguments", "message"), REFUSALS)
def test_refusals_change_nothing(qjobd_socket: Path, tmp_path: Path, command: str,
                                 arguments: dict[str, Any], message: str) -> None:
    images = disks(tmp_path)
    run("qemu-img", "snapshot", "-c", "only-d1", str(images[1]))
    frozen = make_qcow2(tmp_path / "frozen.qcow2", MiB)
    raw = tmp_path / "plain.raw"
    raw.write_bytes(bytes(MiB))
    before = [image.read_bytes() for image in images]
    with Client(qjobd_socket) as c:
        for index, image in enumerate(images):
            c.ok("blockdev-add", qcow2_opts(f"d{index}", image))
        c.ok("blockdev-add", qcow2_opts("ro", frozen, **{"read-only": True}))
        c.ok("blockdev-add", {"driver": "raw", "node-name": "r",
                              "file": {"driver": "file", "filename": str(raw)}})
        info = run_job(c, command, **{"job-id": "j", **arguments})
        assert info["error"] == message
        assert info["status"] == "concluded"
        assert c.statuses("j") == ["created", "running", "aborting", "concluded", "null"]
        for name in ("d0", "d1"):
            c.ok("blockdev-del", {"node-name": name})
    assert [image.read_bytes() for image in images] == before


def test_job_id_rules(qjobd_socket: Path) -> None:
    with Client(qjobd_socket) as c:
        assert c.error("snapshot-save", {"job-id": "1x", "tag": "t", "vmstate": "a",
                                         "devices": ["a"]}) == "Invalid job ID '1x'"
        assert c.error("snapshot-delete", {"job-id": "j", "tag": "t"}) == (
            "Parameter 'devices' is missing")


# Section: kill -9 while snapshot-save jobs run


@pytest.mark.parametrize("seed", range(6))
def test_kill_9_during_snapshot_saves(tmp_path: Path, seed: int) -> None:
    images = disks(tmp_path)
    rng = random.Random(seed)
    saved: list[str] = []

    def actions(c: Client) -> None:
        for index, image in enumerate(images):
            c.ok("blockdev-add", qcow2_opts(f"d{index}", image))
        for step in range(rng.randrange(2, 8)):
            run_job(c, "snapshot-save", **{"job-id": f"s{step}", "tag": f"t{step}",
                                            "vmstate": "d0", "devices": ["d0", "d1"]})
            saved.append(f"t{step}")
        # The last ones are in flight when the kill comes.
        for step in range(8, 8 + rng.randrange(1, 4)):
            c.wire.send(json.dumps({"execute": "snapshot-save", "arguments": {
                "job-id": f"s{step}", "tag": f"t{step}", "vmstate": "d0",
                "devices": ["d0", "d1"]}}) + "\n")

    kill_9_after(tmp_path / "k.sock", actions)
    for image in images:
        assert check_status(image) == 0, run("qemu-img", "check", str(image))
        present = names(image)
        assert present[:len(saved)] == saved

"""External snapshots through a real qjobd: the graph, the images, the data.

A raw node over the image plays the guest's disk (qjobd has no devices): after
the snapshot it reads through the overlay, jobs writing to it fill the overlay,
and the frozen image keeps its bytes.  qemu-img judges every image (check,
info --backing-chain, compare); a follow-up block-commit must put the writes into
the frozen image exactly.  What qemu-storage-daemon answers is compared in
test_external_snapshot_qsd.py.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from helpers.client import Client
from helpers.daemons import Daemon
from helpers.images import MiB, assert_same_content, make_image
from helpers.qcow2 import check, make_qcow2, qcow2_opts, qemu_io, raw_content, run

SIZE = 8 * MiB


def nodes(c: Client) -> dict[str, dict[str, Any]]:
    return {n["node-name"]: n for n in c.ok("query-named-block-nodes", {"flat": True})}


def raw_over_qcow2(image: Path) -> str:
    """The filename of a raw node over a qcow2 node over ``image``."""
    return ('json:{"driver": "raw", "file": {"driver": "qcow2", "file": {"driver": "file", '
            f'"filename": "{image}"}}}}}}')


def chain(image: Path) -> list[dict[str, Any]]:
    """qemu-img info --backing-chain, image first."""
    result: list[dict[str, Any]] = json.loads(
        run("qemu-img", "info", "-U", "--output=json", "--backing-chain", str(image)))
    return result


def base_image(directory: Path) -> Path:
    base = make_qcow2(directory / "base.qcow2", SIZE)
    qemu_io(base, "write -P 7 0 3M", "write -z 3M 1M", "write -P 9 6M 1M")
    return base


def copy_out(c: Client, device: str, path: Path, job: str) -> None:
    """drive-backup ``device`` into a new raw file: what the device reads."""
    c.ok("drive-backup", {"job-id": job, "device": device, "target": str(path),
                          "format": "raw", "sync": "full"})
    c.wait_status(job, "null")


def test_snapshot_sync_freezes_the_image_and_writes_go_to_the_overlay(
        qjobd: Daemon, tmp_path: Path) -> None:
    base = base_image(tmp_path)
    frozen = tmp_path / "frozen.raw"
    raw_content(base, frozen)
    new_data = make_image(tmp_path / "new.raw", SIZE, [(MiB, 2 * MiB), (5 * MiB, MiB)],
                          seed=3)
    overlay = tmp_path / "over.qcow2"
    with Client(qjobd.socket) as c:
        c.ok("blockdev-add", qcow2_opts("img", base))
        c.ok("blockdev-add", {"driver": "raw", "node-name": "disk", "file": "img"})
        c.ok("blockdev-add", {"driver": "raw", "node-name": "src",
                              "file": {"driver": "file", "filename": str(new_data)}})
        c.ok("blockdev-snapshot-sync", {"node-name": "img", "snapshot-file": str(overlay),
                                        "snapshot-node-name": "over"})
        listed = nodes(c)
        assert listed["disk"]["file"] == raw_over_qcow2(overlay)
        assert listed["over"]["backing_file"] == str(base)
        assert (listed["img"]["ro"], listed["over"]["ro"]) == (True, False)
        # The disk reads what it read before.
        copy_out(c, "disk", tmp_path / "before.raw", "c1")
        # A job writing to the disk writes into the overlay.
        c.ok("blockdev-backup", {"job-id": "w", "device": "src", "target": "disk",
                                 "sync": "full"})
        c.wait_status("w", "null")
        copy_out(c, "disk", tmp_path / "after.raw", "c2")
        qjobd.quit(c)  # every table written back before qemu-img looks
    assert_same_content(tmp_path / "before.raw", frozen)
    assert_same_content(tmp_path / "after.raw", new_data)
    top, below = chain(overlay)
    assert (top["format"], top["virtual-size"]) == ("qcow2", SIZE)
    assert (top["backing-filename"], top["backing-filename-format"]) == (str(base), "qcow2")
    assert below["filename"] == str(base)
    check(overlay)
    check(base)
    assert raw_content(base, tmp_path / "base-after.raw") == frozen.read_bytes()
    run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(overlay), str(new_data))


def test_blockdev_snapshot_then_commit_puts_the_writes_into_the_base(
        qjobd: Daemon, tmp_path: Path) -> None:
    base = base_image(tmp_path)
    frozen = raw_content(base, tmp_path / "frozen.raw")
    new_data = make_image(tmp_path / "new.raw", SIZE, [(2 * MiB, 3 * MiB)], seed=4)
    overlay = make_qcow2(tmp_path / "over.qcow2", SIZE, backing=base)
    with Client(qjobd.socket) as c:
        c.ok("blockdev-add", qcow2_opts("img", base))
        c.ok("blockdev-add", qcow2_opts("over", overlay, backing=None))
        c.ok("blockdev-add", {"driver": "raw", "node-name": "src",
                              "file": {"driver": "file", "filename": str(new_data)}})
        c.ok("blockdev-snapshot", {"node": "img", "overlay": "over"})
        listed = nodes(c)
        assert listed["over"]["backing_file"] == str(base)
        # The overlay names this very file, so its filename is the plain one.
        assert listed["over"]["file"] == str(overlay)
        assert listed["img"]["ro"] is True
        c.ok("blockdev-backup", {"job-id": "w", "device": "src", "target": "over",
                                 "sync": "full"})
        c.wait_status("w", "null")
        assert raw_content(base, tmp_path / "mid.raw") == frozen
        copy_out(c, "over", tmp_path / "over.raw", "c")
        assert_same_content(tmp_path / "over.raw", new_data)
        # Committing the active layer: a mirror into the base, ended by the client.
        c.ok("block-commit", {"job-id": "k", "device": "over"})
        c.wait_event("BLOCK_JOB_READY", "k")
        c.ok("job-complete", {"id": "k"})
        c.wait_status("k", "null")
        # The base is the active image again (QEMU's mirror_exit_common).
        assert nodes(c)["img"]["ro"] is False
        qjobd.quit(c)
    check(base)
    run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(base), str(new_data))


def test_mode_existing_uses_the_image_without_its_own_backing_file(
        qjobd_socket: Path, tmp_path: Path) -> None:
    base = base_image(tmp_path)
    other = make_qcow2(tmp_path / "other.qcow2", SIZE)
    qemu_io(other, "write -P 1 0 8M")
    overlay = make_qcow2(tmp_path / "over.qcow2", SIZE, backing=other)
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("img", base))
        c.ok("blockdev-add", {"driver": "raw", "node-name": "disk", "file": "img"})
        c.ok("blockdev-snapshot-sync", {"node-name": "img", "snapshot-file": str(overlay),
                                        "snapshot-node-name": "over", "mode": "existing"})
        listed = nodes(c)
        # The header still names other.qcow2, so the filename spells the chain out.
        assert listed["over"]["file"].startswith("json:")
        assert listed["over"]["backing_file"] == str(base)
        copy_out(c, "disk", tmp_path / "read.raw", "c")
    assert raw_content(base, tmp_path / "base.raw") == (tmp_path / "read.raw").read_bytes()
    assert chain(overlay)[0]["backing-filename"] == str(other)


def test_a_failed_transaction_undoes_the_snapshot(qjobd_socket: Path,
                                                  tmp_path: Path) -> None:
    base = base_image(tmp_path)
    target = make_qcow2(tmp_path / "t.qcow2", SIZE)
    overlay = tmp_path / "over.qcow2"
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("img", base))
        c.ok("blockdev-add", {"driver": "raw", "node-name": "disk", "file": "img"})
        c.ok("blockdev-add", qcow2_opts("t", target))
        before = c.ok("query-named-block-nodes")
        assert c.error("transaction", {"actions": [
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "img", "snapshot-file": str(overlay),
                "snapshot-node-name": "over"}},
            {"type": "blockdev-backup", "data": {"job-id": "j", "device": "disk",
                                                 "target": "t", "sync": "full"}},
            {"type": "abort", "data": {}}]}) == "Transaction aborted using Abort action"
        assert c.statuses("j") == ["created", "aborting", "concluded", "null"]
        assert c.ok("query-named-block-nodes") == before
        # The node is still the disk's image, writable, and can be snapshotted again.
        c.ok("blockdev-snapshot-sync", {"node-name": "img", "snapshot-file": str(overlay),
                                        "snapshot-node-name": "over"})
        assert nodes(c)["disk"]["file"] == raw_over_qcow2(overlay)
    # The image created by the aborted action stayed, as QEMU leaves it.
    check(overlay)
    check(base)


def test_snapshots_in_one_transaction_commit_together(qjobd_socket: Path,
                                                      tmp_path: Path) -> None:
    images = []
    for name in ("a", "b"):
        image = make_qcow2(tmp_path / f"{name}.qcow2", SIZE)
        qemu_io(image, f"write -P {ord(name)} 0 1M")
        images.append(image)
    with Client(qjobd_socket) as c:
        for name, image in zip("ab", images, strict=True):
            c.ok("blockdev-add", qcow2_opts(name, image))
            c.ok("blockdev-add", {"driver": "raw", "node-name": f"d{name}", "file": name})
        c.ok("transaction", {"actions": [
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": name, "snapshot-file": str(tmp_path / f"{name}.over"),
                "snapshot-node-name": f"{name}o"}} for name in "ab"]})
        listed = nodes(c)
        for name, image in zip("ab", images, strict=True):
            assert listed[f"d{name}"]["file"] == raw_over_qcow2(tmp_path / f"{name}.over")
            assert listed[f"{name}o"]["backing_file"] == str(image)
            assert listed[name]["ro"] is True
        # A read-only node gives a read-only overlay.
        c.ok("blockdev-snapshot-sync", {"node-name": "ao", "format": "qcow2",
                                        "snapshot-file": str(tmp_path / "a2.over"),
                                        "snapshot-node-name": "ao2"})
        listed = nodes(c)
        assert (listed["ao"]["ro"], listed["ao2"]["ro"]) == (True, False)
        assert c.error("blockdev-snapshot-sync", {
            "node-name": "a", "snapshot-file": str(tmp_path / "x"),
            "snapshot-node-name": "x"}) == "Node 'a' is busy: node is used as backing hd of 'ao'"
    top, middle, bottom = chain(tmp_path / "a2.over")
    assert [top["filename"], middle["filename"], bottom["filename"]] == [
        str(tmp_path / "a2.over"), str(tmp_path / "a.over"), str(images[0])]
    for path in (tmp_path / "a.over", tmp_path / "b.over", tmp_path / "a2.over"):
        check(path)


def test_refusals_change_nothing(qjobd: Daemon, tmp_path: Path) -> None:
    """What only qjobd refuses, and why; every refusal leaves the graph alone."""
    base = base_image(tmp_path)
    source = make_qcow2(tmp_path / "s.qcow2", SIZE)
    target = make_qcow2(tmp_path / "t.qcow2", SIZE)
    plain = tmp_path / "plain.qcow2"
    shutil.copy(base, plain)
    with Client(qjobd.socket) as c:
        c.ok("blockdev-add", qcow2_opts("img", base))
        c.ok("blockdev-add", qcow2_opts("s", source, backing=None))
        c.ok("blockdev-add", qcow2_opts("t", target))
        c.ok("blockdev-add", {"driver": "file", "node-name": "f", "filename": str(plain)})
        c.ok("blockdev-add", {"driver": "qcow2", "node-name": "q", "file": "f"})
        before = c.ok("query-named-block-nodes")
        # A running backup's source: in QSD the overlay check lets it pass, and
        # the backup would then read through a backing file it did not have.
        c.ok("blockdev-backup", {"job-id": "b", "device": "s", "target": "t",
                                 "sync": "full", "speed": MiB})
        assert c.error("blockdev-snapshot", {"node": "img", "overlay": "s"}) == (
            "The overlay is already in use")
        c.ok("job-cancel", {"id": "b"})
        c.wait_status("b", "null")
        # The qcow2 driver keeps its file node for itself.
        assert c.error("blockdev-snapshot-sync", {
            "node-name": "f", "snapshot-file": str(tmp_path / "f.over"),
            "snapshot-node-name": "fo"}) == (
            "Cannot put an overlay under the 'file' link of node 'q' (not supported by qjobd)")
        # No file locks in qjobd: an overlay on the node's own image is refused.
        c.ok("blockdev-add", {"driver": "raw", "node-name": "disk", "file": "img"})
        before = c.ok("query-named-block-nodes")
        assert c.error("blockdev-snapshot-sync", {
            "node-name": "img", "snapshot-file": str(base), "mode": "existing",
            "snapshot-node-name": "again"}) == (
            "Node 'again' is on an image file of 'img' and cannot be its overlay")
        assert c.ok("query-named-block-nodes") == before
        qjobd.quit(c)
    check(plain)
    check(base)


def test_snapshots_while_a_job_writes_to_the_disk_lose_nothing(
        qjobd: Daemon, tmp_path: Path) -> None:
    size = 32 * MiB
    image = make_qcow2(tmp_path / "img.qcow2", size)
    source = make_image(tmp_path / "src.raw", size, data=True, seed=9)
    overlays = [tmp_path / "o0.qcow2", tmp_path / "o1.qcow2"]
    with Client(qjobd.socket) as c:
        c.ok("blockdev-add", qcow2_opts("img", image))
        c.ok("blockdev-add", {"driver": "raw", "node-name": "disk", "file": "img"})
        c.ok("blockdev-add", {"driver": "raw", "node-name": "src",
                              "file": {"driver": "file", "filename": str(source)}})
        c.ok("blockdev-backup", {"job-id": "w", "device": "src", "target": "disk",
                                 "sync": "full", "speed": 16 * MiB})
        for level, overlay in enumerate(overlays):
            time.sleep(0.5)
            c.ok("blockdev-snapshot-sync", {
                "node-name": "img" if level == 0 else "o0", "snapshot-file": str(overlay),
                "snapshot-node-name": f"o{level}"})
        assert c.ok("query-jobs")[0]["status"] == "running"
        c.wait_status("w", "null")
        copy_out(c, "disk", tmp_path / "out.raw", "c")
        qjobd.quit(c)
    assert_same_content(tmp_path / "out.raw", source)
    for path in (image, *overlays):
        check(path)
    # What the chain holds on disk, once the daemon is gone, is what was written.
    run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(overlays[1]), str(source))
    # Each image of the chain took some of the writes.
    extents = json.loads(run("qemu-img", "map", "--output=json", str(overlays[1])))
    depths = {extent["depth"] for extent in extents if extent["data"]}
    assert depths == {0, 1, 2}

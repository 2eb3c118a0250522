"""Internal snapshot commands and dirty-image repair: qjobd and qemu-storage-daemon
7.2, line for line.

Both daemons open copies of the same images and take, list and delete snapshots
with the same commands, refusals included; the transcripts must be identical once
times are masked (a snapshot records when it was taken).  Afterwards both images
must list the same snapshots, and read the same in every snapshot and the active
layer; qjobd's must pass ``qemu-img check`` without a leak.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Transcript
from helpers.daemons import on_both_daemons, qsd_available
from helpers.images import MiB
from helpers.nodes import file_opts
from helpers.qcow2 import assert_same_snapshots, make_qcow2, qcow2_opts, qemu_io, run

pytestmark = pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")

Step = tuple[str, dict[str, Any] | None]

_TIMES = re.compile(r'"(date-sec|date-nsec|vm-clock-sec|vm-clock-nsec)": \d+')
#: Sizes of the image files: qjobd writes a snapshot's changed tables to new clusters
#: and switches the header once (crash-safe), QEMU edits them in place, so the files
#: grow differently while reading the same.
_FILE_SIZES = re.compile(r'"actual-size": \d+|"virtual-size": \d+(?=, "filename": '
                         r'"[^"]*", "format": "file")')


def masked(lines: list[str]) -> list[str]:
    return [_FILE_SIZES.sub("SIZE", _TIMES.sub(r'"\1": T', line)) for line in lines]


def images(directory: Path) -> dict[str, Path]:
    main = make_qcow2(directory / "main.qcow2", 8 * MiB)
    qemu_io(main, "write -P 1 0 2M", "write -z 3M 1M", "write -P 2 7M 300k")
    frozen = make_qcow2(directory / "frozen.qcow2", 4 * MiB)
    qemu_io(frozen, "write -P 3 0 1M")
    run("qemu-img", "snapshot", "-c", "old", str(frozen))
    raw = directory / "plain.raw"
    raw.write_bytes(bytes(MiB))
    return {"main": main, "frozen": frozen, "raw": raw}


def transcripts(tmp_path: Path, source: Path, steps: list[Step],
                keep: Callable[[Transcript], list[str]] | None = None) -> list[str]:
    """The masked transcripts of ``steps`` on both daemons, each in a copy of the
    files in ``source`` (asserted equal); ``keep`` may add steps and pick lines."""
    runs = tmp_path / "runs"
    runs.mkdir()

    def run_steps(socket: Path, workdir: Path) -> list[str]:
        for path in source.iterdir():
            shutil.copy(path, workdir / path.name)
        log = Transcript(socket, workdir)
        try:
            for execute, arguments in steps:
                log.raw(execute, _in(workdir, arguments))
            lines = keep(log) if keep is not None else log.lines
        finally:
            log.close()
        return masked(lines)

    theirs, ours = on_both_daemons(runs, run_steps)
    assert ours == theirs
    return ours


def test_take_list_and_delete(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    images(source)
    nodes: list[Step] = [
        ("blockdev-add", qcow2_opts("q", "/tmp/X/main.qcow2") | {
            "file": file_opts("/tmp/X/main.qcow2") | {"node-name": "qf"}}),
        ("blockdev-add", qcow2_opts("ro", "/tmp/X/frozen.qcow2", **{"read-only": True})),
        ("blockdev-add", {"driver": "raw", "node-name": "r",
                          "file": file_opts("/tmp/X/plain.raw")}),
    ]
    take = "blockdev-snapshot-internal-sync"
    drop = "blockdev-snapshot-delete-internal-sync"
    steps: list[Step] = [
        *nodes,
        (take, {"device": "nope", "name": "s"}),
        (take, {"device": "qf", "name": "s"}),
        (take, {"device": "r", "name": "s"}),
        (take, {"device": "ro", "name": "s"}),
        (take, {"device": "q", "name": ""}),
        (take, {"device": "q", "name": "s1"}),
        (take, {"device": "q", "name": "s1"}),
        (take, {"device": "q", "name": "s2"}),
        (take, {"device": "q", "name": "s3"}),
        ("query-named-block-nodes", {"flat": True}),
        (drop, {"device": "q"}),
        (drop, {"device": "nope", "name": "s1"}),
        (drop, {"device": "qf", "name": "s1"}),
        (drop, {"device": "r", "name": "s1"}),
        (drop, {"device": "q", "name": "zz"}),
        (drop, {"device": "q", "id": "9"}),
        (drop, {"device": "q", "id": "1", "name": "s2"}),
        (drop, {"device": "ro", "name": "nothing"}),
        (drop, {"device": "q", "id": "2"}),
        (drop, {"device": "q", "id": "1", "name": "s1"}),
        (take, {"device": "q", "name": "s4"}),
        ("transaction", {"actions": [
            {"type": take, "data": {"device": "q", "name": "t1"}},
            {"type": "abort", "data": {}}]}),
        ("transaction", {"actions": [
            {"type": take, "data": {"device": "q", "name": "t1"}},
            {"type": take, "data": {"device": "q", "name": "t1"}}]}),
        ("transaction", {"actions": [{"type": take, "data": {"device": "q", "name": "t2"}}],
                         "properties": {"completion-mode": "grouped"}}),
        ("transaction", {"actions": [
            {"type": take, "data": {"device": "q", "name": "t3"}},
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "q", "snapshot-file": "/tmp/X/over.qcow2",
                "snapshot-node-name": "over"}},
            {"type": take, "data": {"device": "q", "name": "t4"}}]}),
        ("query-named-block-nodes", None),
        ("blockdev-del", {"node-name": "q"}),
    ]
    ours = transcripts(tmp_path, source, steps)
    assert '"name": "s3"' in "\n".join(ours)
    runs = tmp_path / "runs"
    assert_same_snapshots(runs / "qjobd" / "main.qcow2", runs / "qsd" / "main.qcow2",
                          tmp_path)


def test_nodes_a_job_uses(tmp_path: Path) -> None:
    """A backup's source has the job's filter above it and its target is the
    filter's child: neither is a root node while the job runs."""
    source = tmp_path / "source"
    source.mkdir()
    images(source)
    make_qcow2(source / "target.qcow2", 8 * MiB)
    steps: list[Step] = [
        ("blockdev-add", qcow2_opts("q", "/tmp/X/main.qcow2")),
        ("blockdev-add", qcow2_opts("t", "/tmp/X/target.qcow2")),
        ("blockdev-snapshot-internal-sync", {"device": "q", "name": "before"}),
        ("blockdev-backup", {"job-id": "bk", "device": "q", "target": "t",
                             "sync": "full", "speed": 1, "auto-dismiss": False}),
        ("blockdev-snapshot-internal-sync", {"device": "q", "name": "during"}),
        ("blockdev-snapshot-delete-internal-sync", {"device": "q", "name": "before"}),
        ("blockdev-snapshot-internal-sync", {"device": "t", "name": "during"}),
        ("blockdev-snapshot-delete-internal-sync", {"device": "t", "name": "x"}),
    ]

    def cancel_and_replies(log: Transcript) -> list[str]:
        mark = log.mark()
        log.quiet("block-job-cancel", {"device": "bk", "force": True})
        log.wait(lambda event: event.get("data", {}).get("status") == "concluded",
                 after=mark)
        log.quiet("job-dismiss", {"id": "bk"})
        log.raw("blockdev-snapshot-delete-internal-sync", {"device": "q", "name": "before"})
        return [line for line in log.lines if line.startswith(('< {"return"', '< {"error"'))]

    ours = transcripts(tmp_path, source, steps, cancel_and_replies)
    assert sum("Need a root block node" in line for line in ours) == 4


def _in(workdir: Path, value: Any) -> Any:
    """``value`` with /tmp/X in its strings as the daemon's working directory."""
    if isinstance(value, str):
        return value.replace("/tmp/X", str(workdir))
    if isinstance(value, dict):
        return {key: _in(workdir, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_in(workdir, item) for item in value]
    return value


def test_dirty_image_opened_for_writing(tmp_path: Path) -> None:
    """Both daemons repair a dirty image when they open it read-write: the node
    shows no dirty flag, and both results pass qemu-img check and read the same."""
    source = tmp_path / "source"
    source.mkdir()
    image = make_qcow2(source / "dirty.qcow2", 8 * MiB, lazy_refcounts="on")
    qemu_io(image, "write -P 1 0 2M")
    run("qemu-img", "snapshot", "-c", "s", str(image))
    subprocess.run(["qemu-io", "-c", "write -P 2 1M 3M", "-c", "sigraise 9", str(image)],
                   capture_output=True)
    steps: list[Step] = [
        ("blockdev-add", qcow2_opts("ro", "/tmp/X/dirty.qcow2", **{"read-only": True})),
        ("query-named-block-nodes", {"flat": True}),
        ("blockdev-del", {"node-name": "ro"}),
        ("blockdev-add", qcow2_opts("q", "/tmp/X/dirty.qcow2")),
        ("query-named-block-nodes", {"flat": True}),
        ("blockdev-del", {"node-name": "q"}),
    ]
    ours = transcripts(tmp_path, source, steps)
    assert '"dirty-flag": true' in ours[3]
    assert '"dirty-flag": true' not in ours[9]
    runs = tmp_path / "runs"
    assert_same_snapshots(runs / "qjobd" / "dirty.qcow2", runs / "qsd" / "dirty.qcow2",
                          tmp_path)

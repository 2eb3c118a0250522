"""qcow2 opens, queries and refusals: qjobd and qemu-storage-daemon 7.2 byte for byte.

The same images are opened by both daemons with the same commands; the reply
lines must be identical once the directory and the digits of generated node names
are masked.  The hostile images are the ones QEMU's own checks catch while
opening: each must get QEMU's error text and leave no node behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Transcript
from helpers.daemons import qsd_available, start_qjobd, start_qsd, stop
from helpers.images import MiB
from helpers.qcow2 import make_qcow2, poke, qcow2_opts, qemu_io, run

pytestmark = pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")

Step = tuple[str, dict[str, Any] | None]


def transcript(start: Callable[[Path], Any], directory: Path, name: str,
               steps: list[Step]) -> list[str]:
    socket = directory / f"{name}.sock"
    process = start(socket)
    try:
        log = Transcript(socket, directory)
        try:
            for execute, arguments in steps:
                log.raw(execute, arguments)
        finally:
            log.close()
        return log.lines
    finally:
        stop(process)


def assert_same_as_qsd(directory: Path, steps: list[Step]) -> None:
    theirs = transcript(start_qsd, directory, "qsd", steps)
    ours = transcript(start_qjobd, directory, "qjobd", steps)
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine == expected


def add(name: str, image: Path, **extra: Any) -> Step:
    return "blockdev-add", qcow2_opts(name, image, **{"read-only": True, **extra})


QUERIES: list[Step] = [("query-named-block-nodes", None),
                       ("query-named-block-nodes", {"flat": True})]


def test_plain_images(tmp_path: Path) -> None:
    v3 = make_qcow2(tmp_path / "v3.qcow2", 3 * MiB)
    qemu_io(v3, "write -P 1 0 1M")
    v2 = make_qcow2(tmp_path / "v2.qcow2", 5 * MiB, compat="0.10", cluster_size=512)
    lazy = make_qcow2(tmp_path / "lazy.qcow2", 2 * MiB, lazy_refcounts="on",
                      cluster_size="2M")
    assert_same_as_qsd(tmp_path, [add("a", v3), add("b", v2), add("c", lazy), *QUERIES,
                                  ("blockdev-del", {"node-name": "b"}),
                                  ("query-named-block-nodes", {"flat": True})])


def test_backing_chains(tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2", 4 * MiB)
    raw = tmp_path / "base.raw"
    raw.write_bytes(bytes(2 * MiB))
    mid = make_qcow2(tmp_path / "mid.qcow2", 4 * MiB, backing=Path("base.qcow2"))
    top = make_qcow2(tmp_path / "top.qcow2", 4 * MiB, backing=mid)
    over_raw = make_qcow2(tmp_path / "over.qcow2", 4 * MiB, backing=raw, backing_fmt="raw")
    missing = make_qcow2(tmp_path / "lost.qcow2", 4 * MiB, backing=base)
    run("qemu-img", "rebase", "-u", "-b", "gone.qcow2", "-F", "qcow2", str(missing))
    assert_same_as_qsd(tmp_path, [
        add("top", top), *QUERIES,
        add("solo", top, backing=None),
        add("b", base), add("top2", top, backing="b"),
        add("r", over_raw),
        add("lost", missing),
        ("query-named-block-nodes", {"flat": True}),
        ("blockdev-del", {"node-name": "b"}),
        ("blockdev-del", {"node-name": "top2"}),
        ("blockdev-del", {"node-name": "b"}),
        ("blockdev-del", {"node-name": "top"}),
        ("query-named-block-nodes", {"flat": True}),
    ])


def test_snapshots_and_compression(tmp_path: Path) -> None:
    image = make_qcow2(tmp_path / "s.qcow2", 4 * MiB)
    qemu_io(image, "write -P 1 0 64k")
    run("qemu-img", "snapshot", "-c", "one", str(image))
    run("qemu-img", "snapshot", "-c", "two", str(image))
    packed = tmp_path / "c.qcow2"
    run("qemu-img", "convert", "-c", "-O", "qcow2", str(image), str(packed))
    assert_same_as_qsd(tmp_path, [add("s", image), add("c", packed), *QUERIES])


def hostile_images(directory: Path) -> list[Path]:
    """One broken image per check that QEMU makes while opening."""
    def broken(name: str, offset: int, data: bytes, **options: Any) -> Path:
        image = make_qcow2(directory / f"{name}.qcow2", MiB, **options)
        poke(image, offset, data)
        return image

    truncated = directory / "truncated.qcow2"
    truncated.write_bytes(make_qcow2(directory / "whole.qcow2", MiB).read_bytes()[:50])
    zeroes = directory / "zeroes.qcow2"
    zeroes.write_bytes(bytes(4096))
    return [
        truncated, zeroes,
        broken("version4", 4, (4).to_bytes(4, "big")),
        broken("cluster8", 20, (8).to_bytes(4, "big")),
        broken("cluster22", 20, (22).to_bytes(4, "big")),
        broken("unknown-bit", 72, (1 << 10).to_bytes(8, "big")),
        broken("aes", 32, (1).to_bytes(4, "big")),
        broken("l1-huge", 36, (0x7FFFFFFF).to_bytes(4, "big")),
        broken("l1-unaligned", 40, (0x30200).to_bytes(8, "big")),
        broken("l1-small", 36, (0).to_bytes(4, "big")),
        broken("size-2-60", 24, (1 << 60).to_bytes(8, "big")),
        broken("refcount-order", 96, (7).to_bytes(4, "big")),
        broken("no-reftable", 56, (0).to_bytes(4, "big")),
        broken("reftable-huge", 56, (0x100000).to_bytes(4, "big")),
        broken("snapshots-unaligned", 60, (1).to_bytes(4, "big") + (7).to_bytes(8, "big")),
        broken("header-short", 100, (90).to_bytes(4, "big")),
        broken("header-long", 100, (70000).to_bytes(4, "big")),
        broken("backing-offset", 8, (70000).to_bytes(8, "big")),
        broken("backing-long", 8, (512).to_bytes(8, "big") + (2000).to_bytes(4, "big")),
        broken("corrupt-bit", 72, (2).to_bytes(8, "big")),
        broken("data-file-bit", 72, (4).to_bytes(8, "big")),
        broken("zstd-unflagged", 104, b"\x01"),
        broken("compression-7", 104, b"\x07"),
        broken("extension-too-large", 112, (0x12345678).to_bytes(4, "big")
               + (100000).to_bytes(4, "big")),
    ]


def test_hostile_images_get_qemus_errors(tmp_path: Path) -> None:
    delete: Step = ("blockdev-del", {"node-name": "h"})
    steps: list[Step] = []
    for image in hostile_images(tmp_path):
        steps += [add("h", image), delete, ("blockdev-add", qcow2_opts("h", image)), delete]
    theirs = transcript(start_qsd, tmp_path, "qsd", steps)
    ours = transcript(start_qjobd, tmp_path, "qjobd", steps)
    assert len(ours) == len(theirs) == 2 * len(steps)
    for step in range(0, len(steps), 4):
        lines = slice(2 * step, 2 * step + 8)
        mine, expected = ours[lines], theirs[lines]
        # Read-only: identical, and nothing is left to delete.
        assert mine[:4] == expected[:4]
        if expected[5] == '< {"return": {}}':
            # QSD opened it read-write, which qjobd does not do yet.
            assert "read-only for now" in mine[5]
        else:
            assert mine[4:] == expected[4:]

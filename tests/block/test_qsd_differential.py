"""The same blockdev-add/-del/query sequence against a live QSD 7.2 and the graph.

Replies must be equal once the two random digits of generated node names are
masked (the counter part must agree).  Skipped when qemu-storage-daemon is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers.daemons import qsd_available, start_qsd, stop
from helpers.images import MiB, make_image
from helpers.wire import Wire

from qjobd.block import BlockGraph
from qjobd.errors import QMPError

pytestmark = pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon not installed")


def sequence(tmp: Path) -> list[tuple[str, dict[str, Any]]]:
    img = str(make_image(tmp / "b.img", 32 * MiB, [(0, MiB)]))
    odd = make_image(tmp / "odd.img", 1000, fill=1)
    directory = tmp / "dir"
    directory.mkdir()

    def f(**extra: Any) -> dict[str, Any]:
        return {"driver": "file", "filename": img, **extra}

    def add(**args: Any) -> tuple[str, dict[str, Any]]:
        return "blockdev-add", args

    def delete(name: str) -> tuple[str, dict[str, Any]]:
        return "blockdev-del", {"node-name": name}

    flat = ("query-named-block-nodes", {"flat": True})
    nested = ("query-named-block-nodes", {"flat": False})
    return [
        add(**{"driver": "raw", "node-name": "b", "file": f()}),
        add(**{"driver": "raw", "node-name": "b", "file": f()}),
        add(**{"driver": "raw", "node-name": "1b", "file": f()}),
        add(**{"driver": "raw", "node-name": "", "file": f()}),
        add(**{"driver": "raw", "node-name": "x" * 32, "file": f()}),
        add(**{"driver": "raw", "file": f()}),
        add(**{"driver": "file", "node-name": "m", "filename": str(tmp / "missing")}),
        add(**{"driver": "file", "node-name": "d", "filename": str(directory)}),
        add(**{"driver": "file", "node-name": "d", "filename": str(directory),
               "read-only": True}),
        add(**{"driver": "file", "node-name": "odd", "filename": str(odd)}),
        add(**{"driver": "raw", "node-name": "r5", "file": "b"}),
        add(**{"driver": "raw", "node-name": "w", "offset": 512, "size": 4096, "file": f()}),
        add(**{"driver": "raw", "node-name": "w2", "offset": 1 << 30, "file": f()}),
        add(**{"driver": "raw", "node-name": "w3", "size": 1000, "file": f()}),
        add(**{"driver": "raw", "node-name": "ro", "read-only": True,
               "cache": {"direct": True, "no-flush": True}, "file": f()}),
        add(**{"driver": "raw", "node-name": "dz", "detect-zeroes": "on", "file": f()}),
        add(**{"driver": "null-co", "node-name": "n1"}),
        add(**{"driver": "null-co", "node-name": "n2", "size": 1000, "read-zeroes": True}),
        add(**{"driver": "blkdebug", "node-name": "d1", "image": f(),
               "inject-error": [{"event": "read_aio", "sector": 8, "once": True,
                                 "errno": 28}]}),
        add(**{"driver": "raw", "node-name": "d2",
               "file": {"driver": "blkdebug", "image": {"driver": "blkdebug", "image": f()}}}),
        add(**{"driver": "blkdebug", "node-name": "d3", "image": "n2", "align": 4096}),
        add(**{"driver": "blkdebug", "node-name": "d4", "image": f(), "align": 3}),
        flat, nested,
        delete("nope"), delete("b"), delete("n2"), delete("r5"), delete("b"),
        delete("#block000"),
        flat,
    ]


def run_qsd(socket: Path, commands: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    process = start_qsd(socket)
    try:
        with Wire(socket) as wire:
            wire.negotiate()
            return [wire.cmd(name, args) for name, args in commands]
    finally:
        stop(process)


def run_graph(commands: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    graph = BlockGraph()
    replies: list[Any] = []
    try:
        for name, args in commands:
            try:
                if name == "blockdev-add":
                    graph.add(args)
                    replies.append({"return": {}})
                elif name == "blockdev-del":
                    graph.delete(args["node-name"])
                    replies.append({"return": {}})
                else:
                    replies.append({"return": graph.query_named_block_nodes(args["flat"])})
            except QMPError as exc:
                replies.append({"error": {"class": exc.error_class, "desc": exc.desc}})
    finally:
        graph.close_all()
    return replies


def mask(reply: Any) -> str:
    return re.sub(r"#block(\d+)\d\d", r"#block\1??", json.dumps(reply, sort_keys=True))


def test_same_replies_as_qsd(tmp_path: Path) -> None:
    commands = sequence(tmp_path)
    theirs = run_qsd(tmp_path / "qsd.sock", commands)
    ours = run_graph(commands)
    for (name, args), expected, got in zip(commands, theirs, ours, strict=True):
        assert mask(got) == mask(expected), f"{name} {args}"

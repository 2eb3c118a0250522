"""Argument checking against replies recorded from qemu-storage-daemon 7.2.

Every row was sent to a real qemu-storage-daemon 7.2 (Debian 1:7.2+dfsg-7+deb12u18,
``qemu-storage-daemon --chardev socket,... --monitor chardev=c0``) and its reply
written down.  ``None`` means QSD's argument visitor accepted the arguments and the
command's handler answered (with the text in the comment, which is the handler's
business, not the model's).

The same table is checked three ways:

* against ``schemas/qsd-subset.json`` (our own rendition of the commands involved);
* against QEMU's real storage-daemon schema, when the QEMU source is around;
* against a live qemu-storage-daemon, when one is installed, which keeps the
  recorded texts honest.
"""

from __future__ import annotations

from typing import Any

import pytest

from qjobd.model import ArgumentError, Model
from qjobd.qapi import Schema
from qjobd.qapi.schema import ObjectType
from qjobd.schema_path import bundled_schema_path

MAX64 = 2**64

# (command, arguments, exact error desc or None)
RECORDED: list[tuple[str, dict[str, Any], str | None]] = [
    # -- the brief's known replies
    ("job-pause", {}, "Parameter 'id' is missing"),
    ("job-pause", {"id": 5}, "Invalid parameter type for 'id', expected: string"),
    ("job-pause", {"id": None}, "Invalid parameter type for 'id', expected: string"),
    ("job-pause", {"id": "nope", "x": 1}, "Parameter 'x' is unexpected"),
    ("qmp_capabilities", {"enable": ["foo"]}, "Parameter 'null' does not accept value 'foo'"),
    (
        "blockdev-create",
        {"job-id": "c2", "options": {"driver": "raw", "file": "f", "size": 4194304}},
        "Parameter 'options.size' is unexpected",
    ),
    (
        "blockdev-create",
        {"job-id": "c2", "options": {"driver": "nosuch"}},
        "Parameter 'driver' does not accept value 'nosuch'",
    ),
    (
        "transaction",
        {"actions": [], "properties": {"completion-mode": "bogus"}},
        "Parameter 'completion-mode' does not accept value 'bogus'",
    ),
    (
        "transaction",
        {"actions": [{"type": "nosuch-action"}]},
        "Parameter 'type' does not accept value 'nosuch-action'",
    ),
    # -- lists: elements are named name[i] in paths, 'null' where only the name counts
    (
        "qmp_capabilities",
        {"enable": [5]},
        "Invalid parameter type for 'enable[0]', expected: string",
    ),
    (
        "qmp_capabilities",
        {"enable": [None]},
        "Invalid parameter type for 'enable[0]', expected: string",
    ),
    (
        "qmp_capabilities",
        {"enable": ["oob", "bogus"]},
        "Parameter 'null' does not accept value 'bogus'",
    ),
    ("qmp_capabilities", {"enable": "oob"}, "Invalid parameter type for 'enable', expected: array"),
    ("qmp_capabilities", {"enable": {}}, "Invalid parameter type for 'enable', expected: array"),
    ("transaction", {"actions": {}}, "Invalid parameter type for 'actions', expected: array"),
    ("transaction", {"actions": [5]}, "Invalid parameter type for 'actions[0]', expected: object"),
    (
        "transaction",
        {"actions": [{"type": "abort"}, {"data": {}}]},
        "Parameter 'actions[0].data' is missing",
    ),
    # an unexpected key inside a nested object is reported before later members
    (
        "transaction",
        {"actions": [{"type": "abort", "data": {"x": 1}}], "properties": 5},
        "Parameter 'actions[0].data.x' is unexpected",
    ),
    (
        "transaction",
        {"actions": [], "properties": []},
        "Invalid parameter type for 'properties', expected: object",
    ),
    # -- unexpected keys; with several, GLib's hash table order decides
    ("job-pause", {"id": "x", "": 1}, "Parameter '' is unexpected"),
    ("job-pause", {"id": "x", "a": 1, "b": 2}, "Parameter 'b' is unexpected"),
    ("query-jobs", {"a": 1}, "Parameter 'a' is unexpected"),
    ("query-jobs", {"a": 1, "b": 2, "c": 3}, "Parameter 'b' is unexpected"),
    ("job-pause", {"id": "nope", "x": 1, "y": 2, "z": 3}, "Parameter 'z' is unexpected"),
    ("block-job-set-speed", {"device": "x", "speed": 1, "zz": 1}, "Parameter 'zz' is unexpected"),
    # -- int / int64
    (
        "block-job-set-speed",
        {"device": "x", "speed": 1.5},
        "Invalid parameter type for 'speed', expected: integer",
    ),
    (
        "block-job-set-speed",
        {"device": "x", "speed": 2**63},
        "Invalid parameter type for 'speed', expected: integer",
    ),
    (
        "block-job-set-speed",
        {"device": "x", "speed": True},
        "Invalid parameter type for 'speed', expected: integer",
    ),
    ("block-job-set-speed", {"device": "x", "speed": -1}, None),  # Block job 'x' not found
    ("block-job-set-speed", {"speed": 1}, "Parameter 'device' is missing"),
    ("block-job-set-speed", {"device": "x"}, "Parameter 'speed' is missing"),
    (
        "blockdev-add",
        {"driver": "file", "node-name": "f", "filename": "x", "aio-max-batch": 1.0},
        "Invalid parameter type for 'aio-max-batch', expected: integer",
    ),
    # -- uint32: 64-bit rule first (full path), then the range (member name only)
    (
        "block-dirty-bitmap-add",
        {"node": "n", "name": "b", "granularity": 2**32},
        "Parameter 'granularity' expects uint32_t",
    ),
    (
        "block-dirty-bitmap-add",
        {"node": "n", "name": "b", "granularity": -1},
        "Parameter 'granularity' expects uint32_t",
    ),
    (
        "block-dirty-bitmap-add",
        {"node": "n", "name": "b", "granularity": -(2**63)},
        "Parameter 'granularity' expects uint32_t",
    ),
    (
        "block-dirty-bitmap-add",
        {"node": "n", "name": "b", "granularity": -(2**63) - 1},
        "Parameter 'granularity' expects uint64",
    ),
    (
        "block-dirty-bitmap-add",
        {"node": "n", "name": "b", "granularity": 1.5},
        "Parameter 'granularity' expects uint64",
    ),
    (
        "block-dirty-bitmap-add",
        {"node": "n", "name": "b", "granularity": "x"},
        "Parameter 'granularity' expects uint64",
    ),
    (
        "block-dirty-bitmap-add",
        {"node": "n", "name": "b", "granularity": True},
        "Parameter 'granularity' expects uint64",
    ),
    # Cannot find device='n' nor node-name='n'
    ("block-dirty-bitmap-add", {"node": "n", "name": "b", "granularity": 2**32 - 1}, None),
    # -- uint16, also inside a list
    (
        "block-export-add",
        {
            "type": "vhost-user-blk",
            "id": "e",
            "node-name": "n",
            "addr": {"type": "unix", "path": "p"},
            "num-queues": 65536,
        },
        "Parameter 'num-queues' expects uint16_t",
    ),
    (
        "block-export-add",
        {
            "type": "vhost-user-blk",
            "id": "e",
            "node-name": "n",
            "addr": {"type": "unix", "path": "p"},
            "num-queues": -1,
        },
        "Parameter 'num-queues' expects uint16_t",
    ),
    (
        "object-add",
        {"qom-type": "memory-backend-ram", "id": "m", "size": 1, "host-nodes": [1, 70000]},
        "Parameter 'null' expects uint16_t",
    ),
    (
        "object-add",
        {"qom-type": "memory-backend-ram", "id": "m", "size": 1, "host-nodes": [1, "x"]},
        "Parameter 'host-nodes[1]' expects uint64",
    ),
    # -- uint64 / size: negative values wrap, everything else non-uint64 is refused
    (
        "blockdev-create",
        {"job-id": "c", "options": {"driver": "file", "filename": "zz", "size": MAX64}},
        "Parameter 'options.size' expects uint64",
    ),
    (
        "blockdev-create",
        {"job-id": "c", "options": {"driver": "file", "filename": "zz", "size": 1.0}},
        "Parameter 'options.size' expects uint64",
    ),
    (
        "blockdev-create",
        {"job-id": "c", "options": {"driver": "file", "filename": "zz", "size": MAX64 - 1, "x": 1}},
        "Parameter 'options.x' is unexpected",
    ),
    (
        "blockdev-create",
        {"job-id": "c", "options": {"driver": "file", "filename": "zz", "size": -(2**63), "x": 1}},
        "Parameter 'options.x' is unexpected",
    ),
    (
        "object-add",
        {"qom-type": "memory-backend-ram", "id": "m", "size": -1, "x": 1},
        "Parameter 'x' is unexpected",
    ),
    (
        "block-set-write-threshold",
        {"node-name": "x", "write-threshold": MAX64},
        "Parameter 'write-threshold' expects uint64",
    ),
    ("block-set-write-threshold", {"node-name": "x", "write-threshold": -5}, None),  # not found
    # -- int32 (blkdebug's max-transfer)
    (
        "blockdev-add",
        {"driver": "blkdebug", "node-name": "d", "image": "x", "max-transfer": 2**31},
        "Parameter 'max-transfer' expects int32_t",
    ),
    (
        "blockdev-add",
        {"driver": "blkdebug", "node-name": "d", "image": "x", "max-transfer": -(2**31) - 1},
        "Parameter 'max-transfer' expects int32_t",
    ),
    (
        "blockdev-add",
        {"driver": "blkdebug", "node-name": "d", "image": "x", "max-transfer": 2**63},
        "Invalid parameter type for 'max-transfer', expected: integer",
    ),
    # -- enums
    (
        "blockdev-create",
        {"job-id": "c", "options": {"driver": 5}},
        "Invalid parameter type for 'options.driver', expected: string",
    ),
    (
        "blockdev-mirror",
        {"device": "d", "target": "t", "sync": "nope", "speed": "x"},
        "Parameter 'sync' does not accept value 'nope'",
    ),
    # -- bool
    (
        "blockdev-mirror",
        {"device": "d", "target": "t", "sync": "full", "auto-finalize": "yes"},
        "Invalid parameter type for 'auto-finalize', expected: boolean",
    ),
    (
        "blockdev-mirror",
        {"device": "d", "target": "t", "sync": "full", "auto-finalize": 1},
        "Invalid parameter type for 'auto-finalize', expected: boolean",
    ),
    # Cannot find device='d' nor node-name='d'
    ("blockdev-mirror", {"device": "d", "target": "t", "sync": "full", "speed": -(2**63)}, None),
    (
        "blockdev-add",
        {"driver": "raw", "file": "f", "cache": {"direct": "yes"}},
        "Invalid parameter type for 'cache.direct', expected: boolean",
    ),
    # -- boxed unions: base members, then the branch
    ("blockdev-add", {}, "Parameter 'driver' is missing"),
    ("blockdev-add", {"driver": "raw"}, "Parameter 'file' is missing"),
    ("object-add", {"qom-type": "can-bus", "id": "cb", "foo": 1}, "Parameter 'foo' is unexpected"),
    (
        "object-add",
        {"qom-type": "can-bus", "id": "cb", "foo": 1, "bar": 2, "baz": 3},
        "Parameter 'baz' is unexpected",
    ),
    (
        "nbd-server-add",
        {"device": "x", "bitmap": 5},
        "Invalid parameter type for 'bitmap', expected: string",
    ),
    # -- alternates: name only and the alternate's QAPI name; branches use paths
    (
        "blockdev-add",
        {"driver": "qcow2", "node-name": "q", "file": 5},
        "Invalid parameter type for 'file', expected: BlockdevRef",
    ),
    (
        "blockdev-add",
        {"driver": "qcow2", "node-name": "q", "file": "f", "backing": 5},
        "Invalid parameter type for 'backing', expected: BlockdevRefOrNull",
    ),
    (
        "blockdev-add",
        {"driver": "qcow2", "node-name": "q", "file": "f", "backing": True},
        "Invalid parameter type for 'backing', expected: BlockdevRefOrNull",
    ),
    (
        "blockdev-add",
        {"driver": "qcow2", "node-name": "q", "file": {"driver": "nosuch"}},
        "Parameter 'driver' does not accept value 'nosuch'",
    ),
    (
        "blockdev-add",
        {"driver": "qcow2", "node-name": "q", "file": {}},
        "Parameter 'file.driver' is missing",
    ),
    (
        "blockdev-add",
        {"driver": "qcow2", "node-name": "q", "file": {"driver": "file", "filename": 5}},
        "Invalid parameter type for 'file.filename', expected: string",
    ),
    (
        "blockdev-add",
        {
            "driver": "qcow2",
            "node-name": "q",
            "file": {"driver": "file", "filename": "x", "y": 1},
            "backing": 5,
        },
        "Parameter 'file.y' is unexpected",
    ),
    (
        "blockdev-add",
        {"driver": "quorum", "node-name": "q", "children": [5]},
        "Invalid parameter type for 'null', expected: BlockdevRef",
    ),
    (
        "blockdev-add",
        {"driver": "quorum", "node-name": "q", "children": ["a", {"driver": "raw"}]},
        "Parameter 'children[1].file' is missing",
    ),
    (
        "blockdev-add",
        {
            "driver": "quorum",
            "node-name": "q",
            "children": ["a", {"driver": "raw", "file": {"driver": "file"}}],
        },
        "Parameter 'children[1].file.filename' is missing",
    ),
    # -- any
    ("qom-set", {"path": "/", "property": "p"}, "Parameter 'value' is missing"),
    # Property 'container.p' not found
    ("qom-set", {"path": "/", "property": "p", "value": {"any": [1, None]}}, None),
]


# Recorded the same way, for commands the fixture schema leaves out: checked only
# against QEMU's schema and the live daemon.
RECORDED_QEMU_ONLY: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "x-blockdev-set-iothread",
        {"node-name": "n", "iothread": 5},
        "Invalid parameter type for 'iothread', expected: StrOrNull",
    ),
    # Failed to find node with node-name='n'
    ("x-blockdev-set-iothread", {"node-name": "n", "iothread": None}, None),
    ("x-blockdev-set-iothread", {"node-name": "n"}, "Parameter 'iothread' is missing"),
    (
        "block-dirty-bitmap-merge",
        {"node": "n", "target": "t", "bitmaps": ["a", 5]},
        "Invalid parameter type for 'null', expected: BlockDirtyBitmapOrStr",
    ),
    (
        "block-dirty-bitmap-merge",
        {"node": "n", "target": "t", "bitmaps": ["a", {"node": "x"}]},
        "Parameter 'bitmaps[1].name' is missing",
    ),
    (
        "block-dirty-bitmap-merge",
        {"node": "n", "target": "t", "bitmaps": [{"node": "x", "name": "y", "z": 1}]},
        "Parameter 'bitmaps[0].z' is unexpected",
    ),
    (
        "blockdev-add",
        {"driver": "file", "node-name": "f", "filename": "x", "locking": "maybe"},
        "Parameter 'locking' does not accept value 'maybe'",
    ),
    ("query-jobs", {"": 1, "a": 2}, "Parameter 'a' is unexpected"),
    ("job-pause", {"id": "é€", "é": 1}, "Parameter 'é' is unexpected"),
    (
        "blockdev-create",
        {"options": {"driver": "file", "filename": "zz", "size": 1, "x": 1}},
        "Parameter 'job-id' is missing",
    ),
]


def _ids(table: list[tuple[str, dict[str, Any], str | None]] = RECORDED) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for command, _, _ in table:
        seen[command] = seen.get(command, 0) + 1
        out.append(f"{command}-{seen[command]}")
    return out


def _outcome(model: Model, command: str, arguments: dict[str, Any]) -> str | None:
    try:
        model.structure_args(command, arguments)
    except ArgumentError as exc:
        return exc.desc
    return None


@pytest.mark.parametrize(("command", "arguments", "expected"), RECORDED, ids=_ids())
def test_fixture_schema(
    subset_model: Model, command: str, arguments: dict[str, Any], expected: str | None
) -> None:
    assert _outcome(subset_model, command, arguments) == expected


@pytest.mark.parametrize(
    ("command", "arguments", "expected"),
    RECORDED + RECORDED_QEMU_ONLY,
    ids=_ids(RECORDED + RECORDED_QEMU_ONLY),
)
def test_qemu_schema(
    qsd_model: Model, command: str, arguments: dict[str, Any], expected: str | None
) -> None:
    assert _outcome(qsd_model, command, arguments) == expected


def test_bundled_schema_agrees(bundled_model: Model) -> None:
    """The rows for commands qjobd ships give the same answers with its schema.

    blockdev-add rows for drivers qjobd does not implement are left out: its
    BlockdevOptions has no branch for them, so it takes no driver options there.
    """
    options = Schema(str(bundled_schema_path())).lookup_type("BlockdevOptions")
    assert isinstance(options, ObjectType)
    assert options.variants is not None
    unbranched = {v.name for v in options.variants.variants if v.type.name == "q_empty"}
    checked = 0
    for command, arguments, expected in RECORDED:
        if command == "blockdev-add" and arguments.get("driver") in unbranched:
            continue
        if command in bundled_model.commands:
            assert _outcome(bundled_model, command, arguments) == expected, (command, arguments)
            checked += 1
    assert checked >= 10


def test_absent_arguments_are_empty(subset_model: Model) -> None:
    """No ``arguments`` member is the same as ``{}`` (qmp-dispatch.c)."""
    with pytest.raises(ArgumentError, match=r"^Parameter 'id' is missing$"):
        subset_model.structure_args("job-pause", None)
    assert subset_model.structure_args("query-jobs", None) is None
    assert subset_model.structure_args("query-jobs", {}) is None


_VISITOR_TEXTS = (
    "is missing",
    "is unexpected",
    "Invalid parameter type",
    "does not accept",
    "expects uint",
    "expects int",
)


@pytest.mark.parametrize(
    ("command", "arguments", "expected"),
    RECORDED + RECORDED_QEMU_ONLY,
    ids=_ids(RECORDED + RECORDED_QEMU_ONLY),
)
def test_live_qsd(
    live_qsd: Any, command: str, arguments: dict[str, Any], expected: str | None
) -> None:
    reply = live_qsd.cmd(command, arguments)
    assert reply is not None
    if expected is not None:
        assert reply.get("error", {}).get("desc") == expected
    elif "error" in reply:
        # accepted by the visitor: whatever the handler said is not a visitor error
        desc = reply["error"]["desc"]
        assert not any(text in desc for text in _VISITOR_TEXTS), desc


def _nested_json(depth: int, leaf: str) -> str:
    text = leaf
    for _ in range(depth):
        text = '{"driver": "raw", "file": ' + text + "}"
    return text


def _nested(depth: int, leaf: Any) -> dict[str, Any]:
    value = leaf
    for _ in range(depth):
        value = {"driver": "raw", "file": value}
    assert isinstance(value, dict)
    return value


# QSD 7.2 parses 1022 levels of blockdev-add nesting (the request and 'arguments'
# make it 1024, QEMU's JSON limit); its visitor gets through all of them.
DEEP = 1022


def test_deep_nesting(subset_model: Model) -> None:
    """Recorded: 1022 nested 'file' objects are accepted by the visitor (the handler
    then says "'node-name' must be specified for the root node"); a bad leaf deep
    down is reported by its plain name."""
    args = subset_model.structure_args("blockdev-add", _nested(DEEP, "leaf"))
    depth = 0
    while not isinstance(args, str):
        args = args.u.file
        depth += 1
    assert depth == DEEP
    assert _outcome(subset_model, "blockdev-add", _nested(1000, 5)) == (
        "Invalid parameter type for 'file', expected: BlockdevRef"
    )
    out = subset_model.unstructure("BlockdevOptions", subset_model.structure(
        "BlockdevOptions", _nested(DEEP, "leaf")))  # fmt: skip
    assert out["file"]["file"]["driver"] == "raw"


def test_deep_nesting_live(live_qsd: Any) -> None:
    live_qsd.send('{"execute": "blockdev-add", "arguments": ' + _nested_json(DEEP, '"x"') + "}\n")
    reply = live_qsd.reply()
    assert reply == {
        "error": {
            "class": "GenericError",
            "desc": "'node-name' must be specified for the root node",
        }
    }
    live_qsd.send('{"execute": "blockdev-add", "arguments": ' + _nested_json(1000, "5") + "}\n")
    reply = live_qsd.reply()
    assert reply is not None
    assert reply["error"]["desc"] == "Invalid parameter type for 'file', expected: BlockdevRef"

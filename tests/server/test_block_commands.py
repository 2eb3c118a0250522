"""blockdev-add, blockdev-del and query-named-block-nodes on the wire.

Three kinds of test, all against a real qjobd on a real socket and real image files
made with ``qemu-img create``:

* the recorded qemu-storage-daemon 7.2 exchanges (shared reference transcripts,
  sections "blockdev-add", "blockdev-del and query-named-block-nodes" and the
  blockdev-add lines of the job sections), reproduced byte for byte;
* one long sequence of node commands, error cases included, sent to a live QSD 7.2
  and to qjobd, whose replies must be the same bytes;
* a failed blockdev-add leaves the graph exactly as it was.

Generated node names are '#block' + a global counter + two random digits; the
random digits are masked before comparing, the counter must agree.
"""

# ruff: noqa: E501  (recorded lines are kept whole)
from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.daemons import qsd_available, start_qjobd, start_qsd, stop
from helpers.images import MiB, allocated, qemu_img_available
from helpers.wire import Wire

_GENERATED = re.compile(rb"#block(\d+)\d\d")

pytestmark = pytest.mark.skipif(not qemu_img_available(), reason="qemu-img is not installed")


def masked(line: bytes | None) -> bytes | None:
    """``line`` with the random digits of generated node names replaced by '??'."""
    return None if line is None else _GENERATED.sub(rb"#block\1??", line)


def qemu_img(path: Path, size: int) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    return path


def request(execute: str, arguments: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"execute": execute}
    if arguments is not None:
        message["arguments"] = arguments
    return json.dumps(message).encode() + b"\n"


def exchange(wire: Wire, sent: bytes) -> bytes | None:
    wire.send(sent)
    return wire.raw_reply(timeout=10)


@pytest.fixture
def wire(qjobd_socket: Path) -> Iterator[Wire]:
    with Wire(qjobd_socket) as client:
        client.negotiate()
        yield client


# --------------------------------------------------------------------- transcripts

#: "blockdev-add (paths shortened)" then "blockdev-del and query-named-block-nodes"
#: (the job sections recorded between them leave no node behind).  /tmp/X stands
#: for the test's directory; ACTUAL for dst.raw's allocated size.
RECORDED_ADD_DEL = [
    ('{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "src", "file": {"driver": "file", "filename": "/tmp/X/src.raw"}}}',
     '{"return": {}}'),
    ('{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "dst", "file": {"driver": "file", "filename": "/tmp/X/dst.raw"}}}',
     '{"return": {}}'),
    ('{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "src", "file": {"driver": "file", "filename": "/tmp/X/src.raw"}}}',
     '{"error": {"class": "GenericError", "desc": "Duplicate nodes with node-name=\'src\'"}}'),
    ('{"execute": "blockdev-add", "arguments": {"driver": "file", "node-name": "bad", "filename": "/tmp/X/missing"}}',
     '{"error": {"class": "GenericError", "desc": "Could not open \'/tmp/X/missing\': No such file or directory"}}'),
    ('{"execute": "blockdev-add", "arguments": {"driver": "nosuchdrv", "node-name": "bad"}}',
     '{"error": {"class": "GenericError", "desc": "Parameter \'driver\' does not accept value \'nosuchdrv\'"}}'),
    ('{"execute": "blockdev-del", "arguments": {"node-name": "src"}}',
     '{"return": {}}'),
    ('{"execute": "blockdev-del", "arguments": {"node-name": "nope"}}',
     '{"error": {"class": "GenericError", "desc": "Failed to find node with node-name=\'nope\'"}}'),
    ('{"execute": "query-named-block-nodes", "arguments": {"flat": true}}',
     '{"return": [{"iops_rd": 0, "detect_zeroes": "off", "image": {"virtual-size": 67108864, "filename": "/tmp/X/dst.raw", "format": "raw", "actual-size": ACTUAL, "dirty-flag": false}, "iops_wr": 0, "ro": false, "node-name": "dst", "backing_file_depth": 0, "drv": "raw", "iops": 0, "bps_wr": 0, "write_threshold": 0, "encrypted": false, "bps": 0, "bps_rd": 0, "cache": {"no-flush": false, "direct": false, "writeback": true}, "file": "/tmp/X/dst.raw"}, {"iops_rd": 0, "detect_zeroes": "off", "image": {"virtual-size": 67108864, "filename": "/tmp/X/dst.raw", "format": "file", "actual-size": ACTUAL, "dirty-flag": false}, "iops_wr": 0, "ro": false, "node-name": "#block129", "backing_file_depth": 0, "drv": "file", "iops": 0, "bps_wr": 0, "write_threshold": 0, "encrypted": false, "bps": 0, "bps_rd": 0, "cache": {"no-flush": false, "direct": false, "writeback": true}, "file": "/tmp/X/dst.raw"}]}'),
]

#: The blockdev-add lines of the job sections, each section on a fresh daemon.
RECORDED_JOB_SECTION_ADDS = [
    # "blockdev-create: file ..." (the image is made by qemu-img here)
    [('{"execute": "blockdev-add", "arguments": {"driver": "file", "node-name": "f", "filename": "/tmp/X/n.img"}}',
      '{"return": {}}')],
    # "default job id, drive-backup"
    [('{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "a", "file": {"driver": "file", "filename": "/tmp/X/a.img"}}}',
      '{"return": {}}')],
    # "on-source-error=stop with an injected read error (raw -> blkdebug -> file)"
    [('{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "a", "file": {"driver": "blkdebug", "node-name": "dbg", "image": {"driver": "file", "filename": "/tmp/X/a.img"}, "inject-error": [{"event": "read_aio", "errno": 5, "sector": 2048, "once": true}]}}}',
      '{"return": {}}'),
     ('{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "b", "file": {"driver": "file", "filename": "/tmp/X/b.img"}}}',
      '{"return": {}}')],
]


def test_recorded_blockdev_add_and_del(wire: Wire, tmp_path: Path) -> None:
    qemu_img(tmp_path / "src.raw", 64 * MiB)
    dst = qemu_img(tmp_path / "dst.raw", 64 * MiB)
    for sent, answer in RECORDED_ADD_DEL:
        expected = answer.replace("/tmp/X", str(tmp_path))
        expected = expected.replace("ACTUAL", str(allocated(dst)))
        got = exchange(wire, sent.replace("/tmp/X", str(tmp_path)).encode() + b"\n")
        assert masked(got) == masked(expected.encode() + b"\r\n"), sent
    assert wire.events == []


@pytest.mark.parametrize("section", range(len(RECORDED_JOB_SECTION_ADDS)))
def test_recorded_blockdev_add_of_job_sections(wire: Wire, tmp_path: Path, section: int) -> None:
    for name in ("n.img", "a.img", "b.img"):
        qemu_img(tmp_path / name, 32 * MiB)
    for sent, answer in RECORDED_JOB_SECTION_ADDS[section]:
        got = exchange(wire, sent.replace("/tmp/X", str(tmp_path)).encode() + b"\n")
        assert got == answer.encode() + b"\r\n", sent


def test_generated_names_count_up_and_list_newest_first(wire: Wire, tmp_path: Path) -> None:
    image = qemu_img(tmp_path / "a.img", MiB)
    for name in ("r0", "r1", "r2"):
        add = {"driver": "raw", "node-name": name,
               "file": {"driver": "file", "filename": str(image)}}
        assert wire.cmd("blockdev-add", add) == {"return": {}}
    reply = wire.cmd("query-named-block-nodes")
    assert reply is not None
    names = [node["node-name"] for node in reply["return"]]
    assert names[0::2] == ["r2", "r1", "r0"]
    for counter, name in zip((2, 1, 0), names[1::2], strict=True):
        assert re.fullmatch(rf"#block{counter}\d\d", name), name


# --------------------------------------------------------------------- against QSD

Step = Callable[[Wire], bytes | None]


def send(execute: str, arguments: dict[str, Any] | None = None) -> Step:
    data = request(execute, arguments)
    return lambda wire: masked(data + b" => " + (exchange(wire, data) or b"<nothing>"))


def delete_implicit_child(parent: str) -> Step:
    """blockdev-del of ``parent``'s generated child, whatever its random digits."""

    def step(wire: Wire) -> bytes | None:
        reply = wire.cmd("query-named-block-nodes", {"flat": True})
        assert reply is not None
        nodes = reply["return"]
        index = next(i for i, node in enumerate(nodes) if node.get("node-name") == parent)
        child = nodes[index + 1]["node-name"]
        assert child.startswith("#block")
        return send("blockdev-del", {"node-name": child})(wire)

    return step


def node_sequence(tmp: Path) -> list[Step]:
    """Node commands and their error cases, in an order that exercises the graph."""
    img = str(tmp / "b.img")
    other = str(tmp / "c.img")
    odd = str(tmp / "odd.img")
    directory = str(tmp / "dir")

    def f(path: str = img, **extra: Any) -> dict[str, Any]:
        return {"driver": "file", "filename": path, **extra}

    def add(**arguments: Any) -> Step:
        return send("blockdev-add", arguments)

    def delete(name: str) -> Step:
        return send("blockdev-del", {"node-name": name})

    def query(flat: bool | None = None) -> Step:
        return send("query-named-block-nodes", None if flat is None else {"flat": flat})

    return [
        query(), query(True),
        add(**{"driver": "raw", "node-name": "b", "file": f()}),
        # duplicates, at the top and inline
        add(**{"driver": "raw", "node-name": "b", "file": f()}),
        add(**{"driver": "raw", "node-name": "b2", "file": f(**{"node-name": "b"})}),
        add(**{"driver": "file", "node-name": "b", "filename": other}),
        # node names
        add(**{"driver": "raw", "file": f()}),
        add(**{"driver": "raw", "node-name": "", "file": f()}),
        add(**{"driver": "raw", "node-name": "1b", "file": f()}),
        add(**{"driver": "raw", "node-name": "b c", "file": f()}),
        add(**{"driver": "raw", "node-name": "#block000", "file": f()}),
        add(**{"driver": "raw", "node-name": "é", "file": f()}),
        add(**{"driver": "raw", "node-name": "x" * 32, "file": f()}),
        add(**{"driver": "raw", "node-name": "x" * 31, "file": f()}),
        add(**{"driver": "raw", "node-name": "ok-1.b_c", "file": f(**{"node-name": "y" * 32})}),
        # files that cannot be opened
        add(**{"driver": "file", "node-name": "m", "filename": str(tmp / "missing")}),
        add(**{"driver": "raw", "node-name": "m", "file": f(str(tmp / "missing"))}),
        add(**{"driver": "file", "node-name": "m", "filename": ""}),
        add(**{"driver": "file", "node-name": "d", "filename": directory}),
        add(**{"driver": "file", "node-name": "d", "filename": directory, "read-only": True}),
        add(**{"driver": "file", "node-name": "odd", "filename": odd}),
        add(**{"driver": "raw", "node-name": "rodd", "file": "odd"}),
        # drivers and arguments the schema refuses
        add(**{"driver": "nosuchdrv", "node-name": "bad"}),
        add(**{"node-name": "bad"}),
        add(**{"driver": "raw", "node-name": "bad"}),
        add(**{"driver": "raw", "node-name": "bad", "file": 1}),
        add(**{"driver": "raw", "node-name": "bad", "file": {"driver": "file"}}),
        add(**{"driver": "raw", "node-name": "bad", "file": f(), "bogus": 1}),
        add(**{"driver": "raw", "node-name": "bad", "file": f(), "read-only": "yes"}),
        add(**{"driver": "raw", "node-name": "bad", "file": f(), "offset": -1}),
        add(**{"driver": "file", "node-name": "bad", "filename": img, "aio": "nope"}),
        # references to existing nodes
        add(**{"driver": "raw", "node-name": "r5", "file": "b"}),
        add(**{"driver": "raw", "node-name": "r6", "file": "nope"}),
        add(**{"driver": "raw", "node-name": "r7", "file": ""}),
        # raw offset and size
        add(**{"driver": "raw", "node-name": "w", "offset": 512, "size": 4096, "file": f()}),
        add(**{"driver": "raw", "node-name": "w1", "offset": 0, "size": 32 * MiB, "file": f()}),
        add(**{"driver": "raw", "node-name": "w2", "offset": 1 << 30, "file": f()}),
        add(**{"driver": "raw", "node-name": "w3", "size": 1000, "file": f()}),
        add(**{"driver": "raw", "node-name": "w4", "offset": 1000, "file": f()}),
        add(**{"driver": "raw", "node-name": "w5", "offset": 32 * MiB, "size": 512, "file": f()}),
        add(**{"driver": "raw", "node-name": "w6", "offset": 512, "size": 32 * MiB, "file": f()}),
        add(**{"driver": "raw", "node-name": "w7", "offset": 32 * MiB, "file": f()}),
        add(**{"driver": "raw", "node-name": "w8", "size": 0, "file": f()}),
        # read-only, sharing, cache, discard, detect-zeroes
        add(**{"driver": "raw", "node-name": "ro", "read-only": True,
               "cache": {"direct": True, "no-flush": True}, "file": f()}),
        add(**{"driver": "raw", "node-name": "ro2", "read-only": True, "file": f(**{"read-only": False})}),
        add(**{"driver": "raw", "node-name": "ro3", "file": f(**{"read-only": True})}),
        add(**{"driver": "raw", "node-name": "ro4", "read-only": False, "file": "ro"}),
        add(**{"driver": "raw", "node-name": "fs", "force-share": True, "file": f()}),
        add(**{"driver": "raw", "node-name": "fs", "force-share": True, "read-only": True,
               "file": f()}),
        add(**{"driver": "raw", "node-name": "ar", "auto-read-only": True, "file": f()}),
        add(**{"driver": "raw", "node-name": "dz", "detect-zeroes": "on", "file": f()}),
        add(**{"driver": "raw", "node-name": "dz2", "detect-zeroes": "unmap", "file": f()}),
        add(**{"driver": "raw", "node-name": "dz3", "detect-zeroes": "unmap", "discard": "unmap",
               "file": f()}),
        add(**{"driver": "file", "node-name": "lk", "filename": other, "locking": "off"}),
        # null-co and blkdebug
        add(**{"driver": "null-co", "node-name": "n1"}),
        add(**{"driver": "null-co", "node-name": "n2", "size": 1000, "read-zeroes": True}),
        add(**{"driver": "blkdebug", "node-name": "d1", "image": f(),
               "inject-error": [{"event": "read_aio", "sector": 8, "once": True, "errno": 28}]}),
        add(**{"driver": "raw", "node-name": "d2",
               "file": {"driver": "blkdebug", "image": {"driver": "blkdebug", "image": f()}}}),
        add(**{"driver": "blkdebug", "node-name": "d3", "image": "n2", "align": 4096}),
        add(**{"driver": "blkdebug", "node-name": "d4", "image": f(), "align": 3}),
        add(**{"driver": "blkdebug", "node-name": "d5", "image": f(), "max-transfer": 1000}),
        query(), query(True), query(False),
        # deleting
        send("blockdev-del", {}),
        send("blockdev-del", {"node-name": 1}),
        delete("nope"),
        delete("b"),          # used by r5
        delete_implicit_child("ro"),
        delete_implicit_child("d2"),
        delete("r5"),
        delete("b"),
        delete("b"),
        delete("d3"),
        delete("n2"),
        delete("rodd"),
        delete("odd"),
        delete("ro"),
        delete("d2"),
        query(True), query(False),
        send("query-named-block-nodes", {"flat": "yes"}),
        send("query-named-block-nodes", {"flat": True, "x": 1}),
    ]


def run_sequence(start: Callable[[Path], subprocess.Popen[bytes]], tmp: Path,
                 steps: Callable[[Path], list[Step]]) -> list[bytes | None]:
    """Fresh images, one daemon, every step's masked reply."""
    work = tmp / "images"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    qemu_img(work / "b.img", 32 * MiB)
    qemu_img(work / "c.img", 8 * MiB)
    (work / "odd.img").write_bytes(b"\1" * 1000)
    (work / "dir").mkdir()
    socket = tmp / "daemon.sock"
    process = start(socket)
    try:
        with Wire(socket) as wire:
            wire.negotiate()
            replies = [step(wire) for step in steps(work)]
            assert wire.events == []
            return replies
    finally:
        stop(process)


@pytest.mark.skipif(not qsd_available(), reason="qemu-storage-daemon is not installed")
def test_node_commands_match_qsd(tmp_path: Path) -> None:
    theirs = run_sequence(start_qsd, tmp_path, node_sequence)
    ours = run_sequence(start_qjobd, tmp_path, node_sequence)
    assert len(ours) == len(theirs)
    for expected, got in zip(theirs, ours, strict=True):
        assert got == expected


# --------------------------------------------------------------------- failures

def failing_adds(tmp: Path) -> list[dict[str, Any]]:
    """blockdev-add arguments that fail at various depths, after creating nodes."""
    img = str(tmp / "b.img")
    good = {"driver": "file", "filename": img}
    return [
        {"driver": "raw", "node-name": "x", "file": {**good, "node-name": "f"}},
        {"driver": "raw", "node-name": "x", "file": {"driver": "file", "filename": str(tmp / "no")}},
        {"driver": "raw", "node-name": "x", "offset": 1 << 40, "file": good},
        {"driver": "raw", "node-name": "x", "offset": 1 << 40, "file": "f"},
        {"driver": "raw", "node-name": "x", "file": {"driver": "blkdebug", "node-name": "dbg",
                                                     "image": {**good, "node-name": "1x"}}},
        {"driver": "raw", "node-name": "x",
         "file": {"driver": "blkdebug", "node-name": "dbg", "align": 3,
                  "image": {"driver": "blkdebug", "node-name": "dbg2", "image": "f"}}},
        {"driver": "raw", "node-name": "x", "file": {"driver": "qcow2", "file": "f"}},
        {"driver": "raw", "node-name": "x", "force-share": True, "file": "f"},
        {"driver": "raw", "file": "f"},
    ]


@pytest.fixture(params=["qjobd", "qsd"])
def either_wire(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Wire]:
    """A negotiated client of qjobd, and of QSD when installed (same behaviour)."""
    if request.param == "qsd" and not qsd_available():
        pytest.skip("qemu-storage-daemon is not installed")
    socket = tmp_path / f"{request.param}.sock"
    process = (start_qsd if request.param == "qsd" else start_qjobd)(socket)
    try:
        with Wire(socket) as client:
            client.negotiate()
            yield client
    finally:
        stop(process)


def test_failed_blockdev_add_changes_nothing(either_wire: Wire, tmp_path: Path) -> None:
    wire = either_wire
    qemu_img(tmp_path / "b.img", 32 * MiB)
    f = {"driver": "file", "node-name": "f", "filename": str(tmp_path / "b.img")}
    assert wire.cmd("blockdev-add", f) == {"return": {}}
    before = [wire.cmd("query-named-block-nodes", {"flat": flat}) for flat in (True, False)]
    for arguments in failing_adds(tmp_path):
        reply = wire.cmd("blockdev-add", arguments)
        assert reply is not None
        assert "error" in reply, arguments
        after = [wire.cmd("query-named-block-nodes", {"flat": flat}) for flat in (True, False)]
        assert after == before, arguments
    # Nothing kept a reference to "f", and the names tried are still free.
    assert wire.cmd("blockdev-del", {"node-name": "f"}) == {"return": {}}
    assert wire.cmd("query-named-block-nodes") == {"return": []}
    image = {"driver": "file", "filename": str(tmp_path / "b.img")}
    for name in ("x", "dbg", "dbg2", "base"):
        add = {"driver": "raw", "node-name": name, "file": image}
        assert wire.cmd("blockdev-add", add) == {"return": {}}


def test_unimplemented_drivers_are_unknown(wire: Wire, tmp_path: Path) -> None:
    """Drivers the schema knows but qjobd lacks are answered as QEMU answers for a
    driver that is not built in (the wording checked against QSD with its block
    modules hidden)."""
    image = qemu_img(tmp_path / "b.img", MiB)
    f = {"driver": "file", "node-name": "f", "filename": str(image)}
    assert wire.cmd("blockdev-add", f) == {"return": {}}
    cases = [
        ({"driver": "raw", "node-name": "r", "file": {"driver": "vmdk"}}, "vmdk"),
        # Without a union branch the schema takes no driver options at all.
        ({"driver": "vmdk", "node-name": "v"}, "vmdk"),
        ({"driver": "null-aio", "node-name": "n"}, "null-aio"),
        ({"driver": "raw", "node-name": "r", "file": {"driver": "null-aio"}}, "null-aio"),
    ]
    for arguments, driver in cases:
        assert wire.cmd("blockdev-add", arguments) == {
            "error": {"class": "GenericError", "desc": f"Unknown driver '{driver}'"}
        }
    # Checks QEMU makes before opening the node still come first.
    assert wire.cmd("blockdev-add", {"driver": "qcow2", "file": "f"}) == {
        "error": {"class": "GenericError",
                  "desc": "'node-name' must be specified for the root node"}
    }
    assert wire.cmd("query-named-block-nodes", {"flat": True})["return"][0]["node-name"] == "f"  # type: ignore[index]


def test_quit_closes_open_nodes(tmp_path: Path) -> None:
    image = qemu_img(tmp_path / "b.img", MiB)
    socket = tmp_path / "q.sock"
    process = start_qjobd(socket)
    try:
        with Wire(socket) as client:
            client.negotiate()
            for name in ("a", "b"):
                add = {"driver": "raw", "node-name": name,
                       "file": {"driver": "blkdebug", "image": {"driver": "file",
                                                                "filename": str(image)}}}
                assert client.cmd("blockdev-add", add) == {"return": {}}
            assert client.cmd("quit") == {"return": {}}
        assert process.wait(10) == 0
        assert process.stderr is not None
        assert b"Traceback" not in process.stderr.read()
    finally:
        stop(process)

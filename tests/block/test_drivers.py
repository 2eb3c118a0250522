"""Driver I/O: file, raw windows, null-co, blkdebug rules."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from helpers.images import MiB, allocated, make_image
from helpers.nodes import file_opts, raw_opts

from qjobd.block import BlockGraph, BlockStatus


@pytest.fixture
def img(tmp_path: Path) -> Path:
    return make_image(tmp_path / "b.img", 8 * MiB, [(MiB, MiB), (4 * MiB, 64 * 1024)])


def test_file_read_write_and_status(graph: BlockGraph, img: Path) -> None:
    node = graph.add({"driver": "file", "node-name": "f", "filename": str(img)})
    content = img.read_bytes()
    assert node.length() == 8 * MiB
    assert node.pread(MiB - 10, 20) == content[MiB - 10:MiB + 10]
    assert node.block_status(0, 8 * MiB) == (BlockStatus.ZERO, MiB)
    assert node.block_status(MiB, 8 * MiB) == (BlockStatus.DATA, MiB)
    assert node.block_status(2 * MiB, MiB) == (BlockStatus.ZERO, MiB)
    node.pwrite(3 * MiB, b"x" * 4096)
    node.flush()
    assert img.read_bytes()[3 * MiB:3 * MiB + 4096] == b"x" * 4096
    before = allocated(img)
    node.write_zeroes(MiB, MiB)
    assert allocated(img) == before - MiB
    assert node.pread(MiB, MiB) == bytes(MiB)
    assert node.block_status(MiB, MiB)[0] is BlockStatus.ZERO


def test_file_length_rounds_to_sectors(graph: BlockGraph, tmp_path: Path) -> None:
    """QSD reports a 1000-byte file as 1024 bytes and reads zeroes past EOF."""
    path = make_image(tmp_path / "odd.img", 1000, fill=1)
    node = graph.add({"driver": "file", "node-name": "f", "filename": str(path)})
    assert node.length() == 1024
    assert node.pread(990, 34) == b"\x01" * 10 + bytes(24)
    assert node.block_status(1000, 24) == (BlockStatus.ZERO, 24)


def test_read_only_refuses_writes(graph: BlockGraph, img: Path) -> None:
    node = graph.add(raw_opts("r", img, **{"read-only": True}))
    with pytest.raises(OSError, match=os.strerror(errno.EPERM)) as info:
        node.pwrite(0, b"x")
    assert info.value.errno == errno.EPERM


def test_raw_window(graph: BlockGraph, img: Path) -> None:
    node = graph.add(raw_opts("w", img, offset=MiB + 512, size=4096))
    content = img.read_bytes()
    assert node.length() == 4096
    assert node.pread(0, 4096) == content[MiB + 512:MiB + 4608]
    node.pwrite(100, b"hello")
    assert img.read_bytes()[MiB + 612:MiB + 617] == b"hello"
    with pytest.raises(OSError, match=os.strerror(errno.ENOSPC)) as info:
        node.pwrite(4000, b"y" * 200)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match=os.strerror(errno.EINVAL)) as info:
        node.pread(4000, 200)
    assert info.value.errno == errno.EINVAL
    assert node.passthrough_fd() is not None
    assert node.passthrough_fd()[1] == MiB + 512  # type: ignore[index]
    # Block status is the file's, shifted: the window starts inside data.
    assert node.block_status(0, 4096) == (BlockStatus.DATA, 4096)
    shifted = graph.add(raw_opts("s", img, offset=512))
    assert shifted.length() == 8 * MiB - 512
    assert shifted.block_status(0, 8 * MiB) == (BlockStatus.ZERO, MiB - 512)


def test_null_co(graph: BlockGraph) -> None:
    node = graph.add({"driver": "null-co", "node-name": "n"})
    assert node.length() == 1 << 30
    node.pwrite(0, b"\xff" * 4096)
    assert node.pread(0, 4096) == bytes(4096)
    assert node.block_status(0, MiB) == (BlockStatus.DATA, MiB)
    zeroes = graph.add({"driver": "null-co", "node-name": "z", "size": 1000,
                        "read-zeroes": True})
    assert zeroes.length() == 1024
    assert zeroes.block_status(0, 1024) == (BlockStatus.ZERO, 1024)
    assert zeroes.passthrough_fd() is None


def test_direct_io_unaligned(graph: BlockGraph, img: Path) -> None:
    try:
        node = graph.add(raw_opts("d", img, cache={"direct": True}))
    except Exception as exc:  # tmpfs and friends have no O_DIRECT
        pytest.skip(str(exc))
    content = bytearray(img.read_bytes())
    assert node.pread(MiB - 100, 300) == bytes(content[MiB - 100:MiB + 200])
    node.pwrite(MiB + 7, b"direct!")
    content[MiB + 7:MiB + 14] = b"direct!"
    node.flush()
    assert img.read_bytes() == bytes(content)
    assert node.passthrough_fd() is None


def blkdebug_raw(graph: BlockGraph, img: Path, rules: list[dict[str, object]],
                 **extra: object) -> object:
    """raw -> blkdebug -> file, the shape in which raw raises read_aio/write_aio."""
    return graph.add({"driver": "raw", "node-name": "top", "file": {
        "driver": "blkdebug", "node-name": "dbg", "image": file_opts(img),
        "inject-error": rules, **extra}})


def test_blkdebug_read_error_at_sector(graph: BlockGraph, img: Path) -> None:
    top = graph.add({"driver": "raw", "node-name": "top", "file": {
        "driver": "blkdebug", "image": file_opts(img),
        "inject-error": [{"event": "read_aio", "sector": 8}]}})
    top.pread(0, 4096)  # sectors 0-7: the rule sits on sector 8
    with pytest.raises(OSError, match=os.strerror(errno.EIO)) as info:
        top.pread(4096, 512)
    assert info.value.errno == errno.EIO
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        top.pread(0, 8192)
    assert top.pread(8192, 512) == bytes(512)
    # The rule is armed by read_aio but matches writes too (default iotype mask).
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        top.pwrite(4096, b"x" * 512)


def test_blkdebug_once_and_errno(graph: BlockGraph, img: Path) -> None:
    top = graph.add({"driver": "raw", "node-name": "top", "file": {
        "driver": "blkdebug", "image": file_opts(img),
        "inject-error": [{"event": "write_aio", "iotype": "write", "errno": 28,
                          "sector": 16, "once": True}]}})
    with pytest.raises(OSError, match=os.strerror(errno.ENOSPC)) as info:
        top.pwrite(16 * 512, b"y" * 512)
    assert info.value.errno == errno.ENOSPC
    top.pwrite(16 * 512, b"y" * 512)
    assert img.read_bytes()[8192:8704] == b"y" * 512
    top.pread(8192, 512)  # reads are not in the mask


def test_blkdebug_needs_an_event(graph: BlockGraph, img: Path) -> None:
    """Reading a blkdebug node directly raises no read_aio event: nothing fails (QEMU)."""
    node = graph.add({"driver": "blkdebug", "node-name": "dbg", "image": file_opts(img),
                      "inject-error": [{"event": "read_aio"}]})
    assert node.pread(0, 512) == bytes(512)
    # pwritev is raised on the node being written, so that rule does fire.
    writes = graph.add({"driver": "blkdebug", "node-name": "dbg2", "image": file_opts(img),
                        "inject-error": [{"event": "pwritev", "errno": 5}]})
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        writes.pwrite(0, b"z")


def test_blkdebug_states_and_flush(graph: BlockGraph, img: Path) -> None:
    top = graph.add({"driver": "raw", "node-name": "top", "file": {
        "driver": "blkdebug", "image": file_opts(img),
        "set-state": [{"event": "read_aio", "state": 1, "new_state": 2}],
        "inject-error": [{"event": "read_aio", "state": 2, "errno": 5},
                         {"event": "flush_to_disk", "errno": 122}]}})
    top.pread(0, 512)  # state 1 -> 2; the state-2 rule was not active yet
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        top.pread(0, 512)
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        top.pwrite(0, b"q")  # still the read_aio rule (matches writes)
    graph2 = BlockGraph()
    try:
        flushing = graph2.add({"driver": "raw", "node-name": "t", "file": {
            "driver": "blkdebug", "image": file_opts(img),
            "inject-error": [{"event": "flush_to_disk", "errno": 122}]}})
        flushing.flush()  # nothing written yet: QEMU skips the flush entirely
        flushing.pwrite(0, b"\0")
        with pytest.raises(OSError, match=os.strerror(122)) as info:
            flushing.flush()
        assert info.value.errno == 122
    finally:
        graph2.close_all()


def test_blkdebug_align_rmw(graph: BlockGraph, img: Path) -> None:
    node = graph.add({"driver": "blkdebug", "node-name": "dbg", "image": file_opts(img),
                      "align": 4096, "max-transfer": 8192})
    content = bytearray(img.read_bytes())
    assert node.pread(MiB + 100, 10000) == bytes(content[MiB + 100:MiB + 10100])
    node.pwrite(MiB + 5, b"abc")
    content[MiB + 5:MiB + 8] = b"abc"
    assert img.read_bytes() == bytes(content)


def test_blkdebug_aligned_request_hits_rule(graph: BlockGraph, img: Path) -> None:
    """With align=4096 a 512-byte read of sector 1 covers sector 7 too."""
    top = graph.add({"driver": "raw", "node-name": "top", "file": {
        "driver": "blkdebug", "image": file_opts(img), "align": 4096,
        "inject-error": [{"event": "read_aio", "sector": 7}]}})
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        top.pread(512, 512)
    top.pread(4096, 512)


def test_writes_survive_flush(graph: BlockGraph, tmp_path: Path) -> None:
    path = make_image(tmp_path / "t.img", MiB)
    node = graph.add(raw_opts("t", path))
    node.pwrite(0, b"data")
    node.flush()
    node.flush()
    with open(path, "rb") as handle:
        assert handle.read(4) == b"data"
    assert os.stat(path).st_size == MiB

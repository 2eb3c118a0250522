"""The copy engine: correctness against qemu-img compare, sparseness, error sides."""

from __future__ import annotations

import errno
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers.images import MiB, allocated, assert_same_content, make_image
from helpers.nodes import file_opts, raw_opts

from qjobd.block import BlockGraph, CopyError, _host, copy_all, copy_chunk, create_file

SIZE = 64 * MiB
EXTENTS = [(0, 4096), (3 * MiB + 512, 2 * MiB), (20 * MiB, 64 * 1024), (SIZE - MiB, MiB)]
DATA = 4096 + 2 * MiB + 64 * 1024 + MiB


@pytest.fixture
def sparse(tmp_path: Path) -> Path:
    return make_image(tmp_path / "sparse.img", SIZE, EXTENTS, seed=7)


@pytest.fixture
def dense(tmp_path: Path) -> Path:
    return make_image(tmp_path / "dense.img", 16 * MiB, data=True)


def open_pair(graph: BlockGraph, src: Path, dst: Path, size: int) -> tuple[object, object]:
    create_file(str(dst), size)
    return (graph.add(raw_opts("src", src, **{"read-only": True})),
            graph.add(raw_opts("dst", dst)))


@pytest.mark.parametrize("chunk", [MiB, 4 * MiB, 16 * MiB])
@pytest.mark.parametrize("copy_range", [True, False])
def test_sparse_copy(graph: BlockGraph, sparse: Path, tmp_path: Path, chunk: int,
                     copy_range: bool) -> None:
    dst_path = tmp_path / "out.img"
    src, dst = open_pair(graph, sparse, dst_path, SIZE)
    result = copy_all(src, dst, chunk_size=chunk, target_zeroed=True,  # type: ignore[arg-type]
                      use_copy_range=copy_range)
    dst.flush()  # type: ignore[attr-defined]
    assert result.total == SIZE
    assert result.copied <= DATA + 2 * 4096  # extents are rounded to fs blocks
    assert_same_content(sparse, dst_path)
    # Stays sparse: the data plus at most a few partial blocks.
    assert allocated(dst_path) <= allocated(sparse) + 8192


def test_dense_copy_and_fallback_agree(graph: BlockGraph, dense: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    size = dense.stat().st_size
    create_file(str(a), size)
    create_file(str(b), size)
    src = graph.add(raw_opts("src", dense))
    ta = graph.add(raw_opts("ta", a))
    tb = graph.add(raw_opts("tb", b))
    copy_all(src, ta, use_copy_range=True)
    copy_all(src, tb, use_copy_range=False)
    assert a.read_bytes() == b.read_bytes() == dense.read_bytes()
    assert_same_content(dense, a)


def test_holes_are_punched_into_existing_data(graph: BlockGraph, sparse: Path,
                                              tmp_path: Path) -> None:
    """Without target_zeroed, zero extents overwrite old target data with holes."""
    old = make_image(tmp_path / "old.img", SIZE, data=True, seed=1)
    src = graph.add(raw_opts("src", sparse))
    dst = graph.add(raw_opts("dst", old))
    result = copy_all(src, dst)
    assert result.zeroed > 0
    assert result.skipped == 0
    dst.flush()
    assert_same_content(sparse, old)
    assert allocated(old) <= allocated(sparse) + 8192


def test_detect_zeroes_in_data(graph: BlockGraph, tmp_path: Path) -> None:
    """Explicit zero data (allocated in the source) becomes holes with detect_zeroes."""
    path = make_image(tmp_path / "zeros.img", 8 * MiB, fill=0)
    out = tmp_path / "out.img"
    src, dst = open_pair(graph, path, out, 8 * MiB)
    result = copy_all(src, dst, target_zeroed=True, detect_zeroes=True)  # type: ignore[arg-type]
    assert result.copied == 0
    assert result.skipped == 8 * MiB
    assert allocated(out) <= 4096


def test_window_and_null_sources(graph: BlockGraph, sparse: Path, tmp_path: Path) -> None:
    window = graph.add(raw_opts("win", sparse, offset=3 * MiB, size=4 * MiB))
    out = tmp_path / "win.img"
    create_file(str(out), 4 * MiB)
    dst = graph.add(raw_opts("dst", out))
    copy_all(window, dst, target_zeroed=True)
    assert out.read_bytes() == sparse.read_bytes()[3 * MiB:7 * MiB]
    null = graph.add({"driver": "null-co", "node-name": "nul", "size": 4 * MiB,
                      "read-zeroes": True})
    result = copy_chunk(null, dst, 0, 4 * MiB)
    assert result.zeroed == 4 * MiB
    assert out.read_bytes() == bytes(4 * MiB)
    sink = graph.add({"driver": "null-co", "node-name": "sink", "size": SIZE})
    assert copy_all(graph.lookup("win"), sink).total == 4 * MiB


def test_error_sides(graph: BlockGraph, sparse: Path, tmp_path: Path) -> None:
    """A failing source read is 'read', a failing target write is 'write'."""
    src = graph.add({"driver": "raw", "node-name": "src", "file": {
        "driver": "blkdebug", "image": file_opts(sparse),
        "inject-error": [{"event": "read_aio", "sector": (3 * MiB + 4096) // 512,
                          "once": True}]}})
    out = tmp_path / "out.img"
    create_file(str(out), SIZE)
    dst = graph.add(raw_opts("dst", out))
    copy_chunk(src, dst, 0, 3 * MiB)
    with pytest.raises(CopyError) as info:
        copy_chunk(src, dst, 3 * MiB, MiB)
    assert info.value.operation == "read"
    assert info.value.errno == errno.EIO
    assert isinstance(info.value, OSError)
    copy_chunk(src, dst, 3 * MiB, MiB)  # once: the retry works

    bad_dst = graph.add({"driver": "raw", "node-name": "bad", "file": {
        "driver": "blkdebug", "image": file_opts(out),
        "inject-error": [{"event": "write_aio", "errno": errno.ENOSPC}]}})
    plain = graph.add(raw_opts("plain", sparse))
    with pytest.raises(CopyError) as info:
        copy_chunk(plain, bad_dst, 3 * MiB, MiB)
    assert info.value.operation == "write"
    assert info.value.errno == errno.ENOSPC


def test_parallel_chunks_from_threads(graph: BlockGraph, tmp_path: Path) -> None:
    """Many workers copying different chunks of the same node pair at once."""
    size = 64 * MiB
    extents = [(i * 2 * MiB + 4096, MiB + 123) for i in range(32)]
    source = make_image(tmp_path / "src.img", size, extents, seed=3)
    out = tmp_path / "out.img"
    src, dst = open_pair(graph, source, out, size)
    chunk = MiB

    def work(index: int) -> int:
        copy_range = index % 2 == 0
        return copy_chunk(src, dst, index * chunk, chunk,  # type: ignore[arg-type]
                          target_zeroed=True, use_copy_range=copy_range).total

    with ThreadPoolExecutor(max_workers=8) as pool:
        totals = list(pool.map(work, range(size // chunk)))
    assert sum(totals) == size
    dst.flush()  # type: ignore[attr-defined]
    assert_same_content(source, out)


def test_write_behind_copies_the_same(graph: BlockGraph, sparse: Path, tmp_path: Path) -> None:
    """write_behind only starts the target's writeback early: the copy is the same,
    and a writeback request that fails (a pipe) is ignored, as a hint."""
    dst_path = tmp_path / "out.img"
    src, dst = open_pair(graph, sparse, dst_path, SIZE)
    for offset in range(0, SIZE, 3 * MiB):
        copy_chunk(src, dst, offset, min(3 * MiB, SIZE - offset),  # type: ignore[arg-type]
                   target_zeroed=True, write_behind=True)
    assert_same_content(sparse, dst_path)
    assert allocated(dst_path) <= allocated(sparse) + 8192
    read_end, write_end = os.pipe()
    try:
        _host.start_writeback(write_end, 0, MiB)
    finally:
        os.close(read_end)
        os.close(write_end)

"""Dirty bitmaps and the write notifications that feed them (block/dirty.py, node.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers.images import MiB, make_image
from helpers.nodes import raw_opts

from qjobd.block import BlockGraph, copy_chunk
from qjobd.block.dirty import DirtyBitmap, granularity_valid

KiB = 1 << 10


def test_granularity_rules() -> None:
    assert granularity_valid(512)
    assert granularity_valid(64 << 20)
    assert not granularity_valid(256)
    assert not granularity_valid(128 << 20)
    assert not granularity_valid(1000)
    with pytest.raises(ValueError, match="granularity"):
        DirtyBitmap(MiB, 3000)


def test_set_clear_count_round_to_granules() -> None:
    bitmap = DirtyBitmap(MiB, 64 * KiB)
    assert bitmap.count() == 0
    bitmap.set(1, 1)
    assert bitmap.count() == 64 * KiB
    assert bitmap.is_dirty(0)
    assert bitmap.is_dirty(64 * KiB - 1)
    assert not bitmap.is_dirty(64 * KiB)
    bitmap.set(60 * KiB, 8 * KiB)  # straddles two granules
    assert bitmap.count() == 128 * KiB
    bitmap.clear(0, 1)  # clearing touches whole granules too
    assert bitmap.count() == 64 * KiB
    bitmap.set(0, 10 * MiB)  # clipped to the length
    assert bitmap.count() == MiB
    bitmap.clear()
    assert bitmap.count() == 0
    bitmap.set(MiB, 4096)  # past the end: nothing
    bitmap.set(0, 0)
    assert bitmap.count() == 0


def test_count_clips_the_last_granule_but_info_does_not() -> None:
    bitmap = DirtyBitmap(MiB + 512, 64 * KiB)
    bitmap.set(0, MiB + 512)
    assert bitmap.count() == MiB + 512
    assert bitmap.info() == {
        "count": MiB + 64 * KiB, "granularity": 64 * KiB, "recording": True,
        "busy": False, "persistent": False,
    }


def test_take_finds_runs_clears_them_and_wraps() -> None:
    bitmap = DirtyBitmap(MiB, 64 * KiB)
    bitmap.set(128 * KiB, 256 * KiB)
    bitmap.set(768 * KiB, 64 * KiB)
    assert bitmap.take(0, 128 * KiB) == (128 * KiB, 128 * KiB)  # limited
    assert bitmap.take(256 * KiB, MiB) == (256 * KiB, 128 * KiB)  # stops at clean
    bitmap.set(0, 64 * KiB)
    # From past the last dirty run it wraps to the beginning.
    assert bitmap.take(896 * KiB, MiB) == (0, 64 * KiB)
    assert bitmap.take(0, MiB) == (768 * KiB, 64 * KiB)
    assert bitmap.take(0, MiB) is None
    assert bitmap.count() == 0


def test_take_clips_to_length_and_takes_at_least_a_granule() -> None:
    bitmap = DirtyBitmap(100 * KiB, 64 * KiB)
    bitmap.set(0, 100 * KiB)
    assert bitmap.take(0, 1) == (0, 64 * KiB)
    assert bitmap.take(0, MiB) == (64 * KiB, 36 * KiB)


def test_disabled_bitmap_ignores_writes_and_listeners_fire() -> None:
    bitmap = DirtyBitmap(MiB)
    calls: list[int] = []
    bitmap.add_listener(lambda: calls.append(1))
    bitmap.recording = False
    bitmap.record_write(0, 4096)
    assert bitmap.count() == 0
    assert not calls
    bitmap.recording = True
    bitmap.record_write(0, 4096)
    assert bitmap.count() == 64 * KiB
    assert calls == [1]
    bitmap.remove_listener(calls.append)  # not registered: no effect
    bitmap.clear()
    assert calls == [1]  # clearing does not notify


def test_concurrent_writers_and_taker_lose_nothing() -> None:
    """Whatever a writer marks after a take is still there for the next one."""
    bitmap = DirtyBitmap(16 * MiB, 64 * KiB)
    stop = threading.Event()
    marked: set[int] = set()

    def writer(seed: int) -> None:
        index = seed
        while not stop.is_set():
            offset = (index * 7919 % 256) * 64 * KiB
            bitmap.set(offset, 1)
            marked.add(offset)
            index += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    taken: set[int] = set()
    for _ in range(2000):
        run = bitmap.take(0, MiB)
        if run:
            taken.update(range(run[0], run[0] + run[1], 64 * KiB))
    stop.set()
    for thread in threads:
        thread.join()
    while (run := bitmap.take(0, MiB)) is not None:
        taken.update(range(run[0], run[0] + run[1], 64 * KiB))
    assert marked <= taken
    assert bitmap.count() == 0


# Section: nodes notify their bitmaps


def test_every_kind_of_write_marks_the_node(graph: BlockGraph, tmp_path: Path) -> None:
    path = make_image(tmp_path / "a.img", 4 * MiB)
    node = graph.add(raw_opts("a", path, discard="unmap"))
    bitmap = DirtyBitmap(node.length(), 64 * KiB)
    node.add_dirty_bitmap(bitmap)
    node.pwrite(0, b"x" * 100)
    assert bitmap.take(0, 4 * MiB) == (0, 64 * KiB)
    node.write_zeroes(MiB, 128 * KiB)
    assert bitmap.take(0, 4 * MiB) == (MiB, 128 * KiB)
    node.discard(2 * MiB, 64 * KiB)
    assert bitmap.take(0, 4 * MiB) == (2 * MiB, 64 * KiB)
    node.readinto(0, memoryview(bytearray(4096)))
    assert bitmap.count() == 0  # reads do not count
    node.remove_dirty_bitmap(bitmap)
    node.pwrite(0, b"y")
    assert bitmap.count() == 0


def test_ignored_discard_does_not_mark(graph: BlockGraph, tmp_path: Path) -> None:
    path = make_image(tmp_path / "a.img", MiB)
    node = graph.add(raw_opts("a", path))  # discard=ignore
    bitmap = DirtyBitmap(node.length())
    node.add_dirty_bitmap(bitmap)
    node.discard(0, 64 * KiB)
    assert bitmap.count() == 0


def test_copy_file_range_into_a_node_marks_it_and_its_file(
    graph: BlockGraph, tmp_path: Path
) -> None:
    """A copy that bypasses pwrite still reaches the bitmaps, down the raw window."""
    src = graph.add(raw_opts("s", make_image(tmp_path / "s.img", 4 * MiB, [(0, 4 * MiB)])))
    dst = graph.add(raw_opts("d", make_image(tmp_path / "d.img", 5 * MiB), offset=MiB))
    on_raw = DirtyBitmap(dst.length(), 64 * KiB)
    on_file = DirtyBitmap(dst.primary.length() if dst.primary else 0, 64 * KiB)
    dst.add_dirty_bitmap(on_raw)
    assert dst.primary is not None
    dst.primary.add_dirty_bitmap(on_file)
    assert dst.passthrough_fd() is not None  # the copy_file_range path is taken
    result = copy_chunk(src, dst, 0, 128 * KiB)
    assert result.copied == 128 * KiB
    assert on_raw.take(0, 5 * MiB) == (0, 128 * KiB)
    assert on_file.take(0, 5 * MiB) == (MiB, 128 * KiB)


def test_needs_flush_follows_writes_and_flushes(graph: BlockGraph, tmp_path: Path) -> None:
    node = graph.add(raw_opts("a", make_image(tmp_path / "a.img", MiB)))
    assert not node.needs_flush()
    node.pwrite(0, b"z")
    assert node.needs_flush()
    node.flush()
    assert not node.needs_flush()


def test_bitmaps_show_in_query_output(graph: BlockGraph, tmp_path: Path) -> None:
    node = graph.add(raw_opts("a", make_image(tmp_path / "a.img", MiB)))
    assert "dirty-bitmaps" not in node.info()
    bitmap = DirtyBitmap(node.length(), 64 * KiB)
    node.add_dirty_bitmap(bitmap)
    bitmap.set(0, 1)
    assert node.info()["dirty-bitmaps"] == [{
        "count": 64 * KiB, "granularity": 64 * KiB, "recording": True, "busy": False,
        "persistent": False,
    }]

"""The shared helpers themselves: images are reproducible, and comparisons and waits
fail when they should (a helper that cannot fail would make its callers vacuous)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from helpers.events import EventRecorder
from helpers.images import MiB, allocated, assert_same_content, make_image
from helpers.model import event_bus


def test_make_image_ways(tmp_path: Path) -> None:
    one = make_image(tmp_path / "1", 4 * MiB, [(MiB, 4096), (3 * MiB, 100)], seed=3)
    two = make_image(tmp_path / "2", 4 * MiB, [(MiB, 4096), (3 * MiB, 100)], seed=3)
    data = one.read_bytes()
    assert data == two.read_bytes()
    assert data[:MiB] == bytes(MiB)
    assert data[MiB:MiB + 4096].count(0) < 100
    assert allocated(one) <= 2 * 64 * 1024
    assert make_image(tmp_path / "e", 2 * MiB).read_bytes() == bytes(2 * MiB)
    assert allocated(tmp_path / "e") == 0
    assert make_image(tmp_path / "f", MiB + 5, fill=0x5A).read_bytes() == b"\x5a" * (MiB + 5)
    dense = make_image(tmp_path / "d", 3 * MiB, data=True, seed=3).read_bytes()
    assert dense[:4096] == data[MiB:MiB + 4096]  # one random stream per seed
    holed = make_image(tmp_path / "h", 32 * MiB, holes=True, seed=3).read_bytes()
    chunks = [holed[offset:offset + MiB] == bytes(MiB) for offset in range(0, 32 * MiB, MiB)]
    assert 0 < sum(chunks) < 32
    with pytest.raises(ValueError, match="at most one"):
        make_image(tmp_path / "x", MiB, [(0, 1)], fill=1)


def test_assert_same_content_fails_on_any_difference(tmp_path: Path) -> None:
    a = make_image(tmp_path / "a", 4 * MiB, [(MiB, MiB)])
    b = make_image(tmp_path / "b", 4 * MiB, data=True)
    with open(b, "r+b") as out:
        out.write(a.read_bytes())
    assert_same_content(a, b)  # allocated zeroes are no difference
    with open(b, "r+b") as out:
        out.seek(3 * MiB + 7)
        out.write(b"\1")
    with pytest.raises(AssertionError, match=r"Content mismatch at offset 3145728"):
        assert_same_content(a, b)
    with pytest.raises(AssertionError, match="sizes differ"):
        assert_same_content(a, make_image(tmp_path / "c", 5 * MiB))


async def test_wait_for_sees_changes_made_without_events() -> None:
    events = EventRecorder(event_bus())
    done: list[int] = []
    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(trio.to_thread.run_sync, done.append, index)
        await events.wait_for(lambda: len(done) == 3)
    assert events.seen == []


async def test_waits_give_up(autojump_clock: trio.testing.MockClock) -> None:
    events = EventRecorder(event_bus())
    with pytest.raises(AssertionError, match=r"still waiting after 30\.0 s"):
        await events.wait_status("j", "running")

"""Output encoding: QEMU's QDict key order and JSON writer, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest

from qjobd.qjson import encode, qdict_order


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # All recorded from qemu-storage-daemon 7.2 (see the reference transcripts).
        ({"return": [], "id": 7}, '{"return": [], "id": 7}'),
        ({"error": {"class": "C", "desc": "d"}, "id": "abc"},
         '{"id": "abc", "error": {"class": "C", "desc": "d"}}'),
        ({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "E",
          "data": {"id": "j1", "status": "created"}},
         '{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "E", '
         '"data": {"status": "created", "id": "j1"}}'),
        ({"id": "j1", "type": "backup", "status": "pending", "current-progress": 1,
          "total-progress": 2},
         '{"current-progress": 1, "status": "pending", "total-progress": 2, "type": "backup", '
         '"id": "j1"}'),
        ({"device": "j", "type": "backup", "len": 1, "offset": 1, "busy": False,
          "paused": False, "speed": 0, "io-status": "ok", "ready": False, "status": "running",
          "auto-finalize": True, "auto-dismiss": True},
         '{"auto-finalize": true, "io-status": "ok", "device": "j", "auto-dismiss": true, '
         '"busy": false, "len": 1, "offset": 1, "status": "running", "paused": false, '
         '"speed": 0, "ready": false, "type": "backup"}'),
    ],
)
def test_key_order_matches_qemu(value: dict[str, Any], text: str) -> None:
    assert encode(value) == text


def test_same_bucket_keys_come_out_newest_first() -> None:
    # Find two keys sharing a bucket: QEMU prints the later-inserted one first.
    from qjobd.qdict import bucket as _bucket

    seen: dict[int, str] = {}
    for index in range(5000):
        key = f"k{index}"
        bucket = _bucket(key)
        if bucket in seen:
            first = seen[bucket]
            assert qdict_order((first, key)) == (key, first)
            return
        seen[bucket] = key
    pytest.fail("no bucket collision found")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("é", '"\\u00E9"'),
        ("\x7f", '"\\u007F"'),
        ("\U0001F600", '"\\uD83D\\uDE00"'),
        ("a\"b\\c\n\t\r\b\f", '"a\\"b\\\\c\\n\\t\\r\\b\\f"'),
        ("\x01", '"\\u0001"'),
        ("\\u00e9", '"\\\\u00e9"'),
        (0.1, "0.10000000000000001"),
        (1.5, "1.5"),
        (float("inf"), "inf"),
        (-(2**63), "-9223372036854775808"),
        (2**64 - 1, "18446744073709551615"),
        ([], "[]"),
        ({}, "{}"),
        (None, "null"),
        ([True, False], "[true, false]"),
    ],
)
def test_scalars_as_qemu_writes_them(value: Any, text: str) -> None:
    assert encode(value) == text
    assert encode([value]) == f"[{text}]"

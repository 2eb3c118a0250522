"""Which of several unexpected keys QEMU names (GLib hash-table order).

The table was recorded from qemu-storage-daemon 7.2 (GLib 2.74); the live test
replays random key sets against a real daemon when one is installed.
"""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from qjobd.model import ArgumentError, Model
from qjobd.model.keyorder import first_unexpected, qdict_iteration_order

MIRROR = [
    "device",
    "target",
    "sync",
    "speed",
    "granularity",
    "buf-size",
    "replaces",
    "job-id",
    "filter-node-name",
    "auto-finalize",
    "auto-dismiss",
    "copy-mode",
    "on-source-error",
    "on-target-error",
]
MIRROR_ORDER = [
    "job-id",
    "device",
    "target",
    "replaces",
    "sync",
    "speed",
    "granularity",
    "buf-size",
    "on-source-error",
    "on-target-error",
    "filter-node-name",
    "copy-mode",
    "auto-finalize",
    "auto-dismiss",
]

# (keys in JSON order, keys visited in order, key QSD 7.2 reported)
RECORDED: list[tuple[list[str], list[str], str]] = [
    (["alpha", "beta", "gamma", "delta"], [], "beta"),
    ([f"k{i}" for i in range(10)], [], "k6"),
    ([f"k{i}" for i in range(40)], [], "k4"),
    (["é", "ü", "x"], [], "ü"),
    (["", "a", "aa"], [], "aa"),
    (["a", "b", "c"], [], "b"),
    (["id", "x", "y", "z"], ["id"], "z"),
    (["z", "id", "y"], ["id"], "z"),
    (["id", "a", "b"], ["id"], "b"),
    (["id", *(f"x{i}" for i in range(20))], ["id"], "x15"),
    ([*MIRROR, "extra1", "extra2"], MIRROR_ORDER, "extra2"),
]


@pytest.mark.parametrize(("keys", "visited", "expected"), RECORDED)
def test_recorded(keys: list[str], visited: list[str], expected: str) -> None:
    assert first_unexpected(keys, visited) == expected


def test_nothing_left() -> None:
    assert first_unexpected(["a", "b"], ["b", "a", "c"]) is None
    assert first_unexpected([], []) is None


def test_single_leftover_needs_no_table() -> None:
    assert first_unexpected(["a", "b", "c"], ["a", "c"]) == "b"


def test_qdict_order_is_bucket_order() -> None:
    # The walk follows tdb buckets, not insertion order.
    keys = ["alpha", "beta", "gamma", "delta"]
    order = qdict_iteration_order(keys)
    assert sorted(order) == sorted(keys)
    assert qdict_iteration_order(order[::-1]) == order  # no two share a bucket here


def test_model_uses_it(subset_model: Model) -> None:
    with pytest.raises(ArgumentError) as info:
        subset_model.structure_args("query-jobs", {"alpha": 1, "beta": 2, "gamma": 3, "delta": 4})
    assert info.value.desc == "Parameter 'beta' is unexpected"
    args: dict[str, Any] = {k: 1 for k in MIRROR}
    args.update(sync="full", device="d", target="t", replaces="r", **{"job-id": "j"})
    args.update(
        {
            "filter-node-name": "f",
            "copy-mode": "background",
            "auto-finalize": True,
            "auto-dismiss": False,
            "on-source-error": "report",
            "on-target-error": "report",
            "extra1": 1,
            "extra2": 2,
        }
    )
    with pytest.raises(ArgumentError) as info:
        subset_model.structure_args("blockdev-mirror", args)
    assert info.value.desc == "Parameter 'extra2' is unexpected"


_ALPHABET = string.ascii_letters + string.digits + "-_.é€😀"


def test_live_random_key_sets(live_qsd: Any) -> None:
    """Random key sets (sizes up to 80, so GLib grows and shrinks its table)."""
    rng = random.Random(7)
    for n in range(150):
        extra: list[str] = []
        size = rng.choice([2, 3, 5, 8, 9, 15, 30, 80])
        while len(extra) < size:
            key = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 8)))
            if key not in extra and key != "id":
                extra.append(key)
        if n % 2:
            items = [("id", "x"), *((k, 1) for k in extra)]
            rng.shuffle(items)
            command, visited = "job-pause", ["id"]
        else:
            items = [(k, 1) for k in extra]
            command, visited = "query-jobs", []
        arguments = dict(items)
        reply = live_qsd.cmd(command, arguments)
        assert reply is not None
        expected = f"Parameter '{first_unexpected(list(arguments), visited)}' is unexpected"
        assert reply["error"]["desc"] == expected, arguments

"""Differential check: random arguments for every qemu-storage-daemon command.

Builds the model from QEMU's own storage-daemon schema and sends seeded random
arguments (mostly valid, some members missing, mistyped, out of range or
unexpected) to a real qemu-storage-daemon 7.2 running without network.  Wherever the
model rejects the arguments, QSD's reply must be the same text; wherever it accepts
them, QSD's reply must not be an argument-visitor error.

Skips without the QEMU source tree, the daemon, or root + unshare(1).
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from qjobd.model import ArgumentError, Model
from qjobd.model.build import AlternateNode, ArrayNode, BuiltinNode, EnumNode, Node, ObjectNode

# Commands not to run once their arguments are accepted: quit, and ones whose QSD
# 7.2 handlers crash on some inputs (reopen of an empty list, ring buffers of
# absurd size, bitmap transactions on missing nodes).
NOT_IF_ACCEPTED = {"quit", "blockdev-reopen", "chardev-add", "chardev-change", "transaction"}

WRONG: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    "s",
    "",
    [],
    {},
    [1],
    {"a": 1},
    2**63,
    2**64,
    -(2**63) - 1,
    2**64 - 1,
    256,
    -129,
    65536,
    2**32,
]
KEYS = ["x", "zz", "a-b", "é", "", "driver", "id", "node-name", "type", "data"]
RANGES = {
    "int8": (-128, 127),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "int": (-(2**63), 2**63 - 1),
    "uint8": (0, 255),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "size": (0, 2**64 - 1),
}
VISITOR_TEXTS = (
    "is missing",
    "is unexpected",
    "Invalid parameter type",
    "does not accept",
    "expects uint",
    "expects int",
)


class Generator:
    def __init__(self, seed: int, mutate: float) -> None:
        self.rng = random.Random(seed)
        self.mutate = mutate

    def value(self, node: Node, depth: int) -> Any:
        rng = self.rng
        if depth < 6 and rng.random() < self.mutate:
            return rng.choice(WRONG)
        if isinstance(node, BuiltinNode):
            if node.name in RANGES:
                lo, hi = RANGES[node.name]
                roll = rng.random()
                if roll < 0.6:
                    return rng.randint(max(lo, 0), min(hi, 1000))
                if roll < 0.8:
                    return rng.choice([lo, hi, lo - 1, hi + 1])
                return rng.randint(lo, hi)
            return {
                "str": lambda: rng.choice(["a", "n0", "", "x y", "é"]),
                "number": lambda: rng.choice([0.5, 1, -3, 2**70]),
                "bool": lambda: rng.random() < 0.5,
                "null": lambda: None,
                "any": lambda: rng.choice([None, 1, "s", [1, "a"], {"k": [True]}]),
            }[node.name]()
        if isinstance(node, EnumNode):
            if rng.random() < 0.05 or not node.values:
                return rng.choice(["bogus", "", "on"])
            return rng.choice(node.values)
        if isinstance(node, ArrayNode):
            return [self.value(node.element, depth + 1) for _ in range(rng.choice([0, 1, 2]))]
        if isinstance(node, AlternateNode):
            branches = [b for _, b in node.branches]
            if depth > 3:
                branches = [b for b in branches if not isinstance(b, ObjectNode)] or branches
            return self.value(rng.choice(branches), depth + 1)
        return self.obj(node, depth)

    def obj(self, node: ObjectNode, depth: int) -> dict[str, Any]:
        rng = self.rng
        members = list(node.members)
        if node.tag is not None:
            value = rng.choice(list(node.branches))
            branch = node.branches[value]
            if branch is not None:
                members += branch.members
        else:
            value = None
        out: dict[str, Any] = {}
        for m in members:
            if (m.optional and rng.random() < 0.6) or rng.random() < 0.03:
                continue
            if node.tag is not None and m.name == node.tag.name and rng.random() < 0.9:
                out[m.name] = value
            else:
                out[m.name] = self.value(m.type, depth + 1)
        while rng.random() < 0.08:
            out[rng.choice(KEYS)] = 1
        items = list(out.items())
        rng.shuffle(items)
        return dict(items)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_arguments(qsd_model: Model, isolated_qsd: Any, seed: int) -> None:
    gen = Generator(seed, mutate=0.08)
    rejected = accepted = 0
    for name, info in sorted(qsd_model.commands.items()):
        for _ in range(6):
            if info.arg_type is None:
                arguments = {} if gen.rng.random() < 0.5 else {gen.rng.choice(KEYS): 1}
            else:
                node = qsd_model._nodes[info.arg_type.__qapi_name__]
                assert isinstance(node, ObjectNode)
                arguments = gen.obj(node, 0)
            try:
                qsd_model.structure_args(name, arguments)
                ours = None
            except ArgumentError as exc:
                ours = exc.desc
            if ours is None and name in NOT_IF_ACCEPTED:
                continue
            reply = isolated_qsd.cmd(name, arguments)
            assert reply is not None, f"QSD died on {name} {json.dumps(arguments)}"
            theirs = reply["error"]["desc"] if "error" in reply else None
            request = f"{name} {json.dumps(arguments)}"
            if ours is not None:
                rejected += 1
                assert theirs == ours, request
            else:
                accepted += 1
                assert theirs is None or not any(t in theirs for t in VISITOR_TEXTS), (
                    request,
                    theirs,
                )
    assert rejected > 50
    assert accepted > 50

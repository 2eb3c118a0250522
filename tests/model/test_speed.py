"""A loose guard on the hot path: structuring and unstructuring must stay cheap.

The daemon aims at more than 8,000 commands per second on one core, so the model's
share must be a few microseconds.  The bound here is generous (tests share the
machine) and only catches accidental per-call reflection or code generation.
"""

from __future__ import annotations

import time

from qjobd.model import Model


def _per_call(fn: object, calls: int) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def test_job_pause_round_trip_is_fast(subset_model: Model) -> None:
    structure, unstructure = subset_model.structure_args, subset_model.unstructure_return

    def call() -> None:
        structure("job-pause", {"id": "job0"})
        unstructure("job-pause", None)

    assert _per_call(call, 20000) < 20e-6


def test_nested_union_is_fast(subset_model: Model) -> None:
    args = {"driver": "qcow2", "node-name": "n", "file": {"driver": "file", "filename": "x"},
            "backing": None}  # fmt: skip

    def call() -> None:
        subset_model.structure_args("blockdev-add", args)

    assert _per_call(call, 5000) < 100e-6

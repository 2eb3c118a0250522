#!/usr/bin/env python3
"""Decode rate of qjobd's QMP input decoder (qjobd.protocol.jsonstream).

Feeds a stream of ``{"execute": "query-jobs", "id": 17}`` lines to
:class:`JSONStreamDecoder` in 4 KiB chunks and one line per ``feed`` call, with the
fast path on and off, and prints values per second next to plain ``json.loads``
per line for scale.

    python contrib/bench/jsonstream_speed.py [--count 200000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from qjobd.protocol.jsonstream import JSONStreamDecoder

LINE = b'{"execute": "query-jobs", "id": 17}\n'


def rate(count: int, *, fast: bool, chunked: bool) -> float:
    decoder = JSONStreamDecoder(fast_path=fast)
    decoded = 0
    if chunked:
        stream = LINE * count
        pieces = [stream[pos : pos + 4096] for pos in range(0, len(stream), 4096)]
        start = time.perf_counter()
        for piece in pieces:
            decoded += len(decoder.feed(piece))
    else:
        start = time.perf_counter()
        for _ in range(count):
            decoded += len(decoder.feed(LINE))
    elapsed = time.perf_counter() - start
    assert decoded == count, decoded
    return count / elapsed


def baseline(count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        json.loads(LINE)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="values per run")
    args = parser.parse_args()
    count: int = args.count
    print(f"json.loads, one line per call:  {baseline(count):>10,.0f} values/s")
    for fast in (True, False):
        label = "fast path" if fast else "slow path"
        for chunked in (True, False):
            mode = "4 KiB chunks " if chunked else "line per feed"
            value = rate(count if fast else count // 4, fast=fast, chunked=chunked)
            print(f"{label}, {mode}:     {value:>10,.0f} values/s")


if __name__ == "__main__":
    main()

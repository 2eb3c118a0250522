#!/usr/bin/env python3
"""QMP command throughput of qjobd against qemu-storage-daemon, in one run.

Measures ``query-jobs`` commands per second on one connection, ping-pong (send one,
wait for its reply) and pipelined (a window of requests in flight), for both daemons,
then qjobd with 8 connections at once (one client process each).  Prints rates and
ratios against the targets: ping-pong >= 2.5x QSD on one connection and >= 5x QSD's one
connection with 8; pipelined >= 13x QSD (one connection and 8).

    python contrib/bench/qmp_throughput.py [--seconds 3] [--window 32]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import socket
import tempfile
import time
from pathlib import Path

from benchlib import available_daemons, start_daemon, stop_daemons

REQUEST = b'{"execute": "query-jobs"}\n'
REPLY_END = b"\n"

#: Target ratio qjobd/QSD by (mode, connections); QSD always on one connection.
TARGETS = {("ping-pong", 1): 2.5, ("ping-pong", 8): 5.0, ("pipelined", 1): 13.0,
           ("pipelined", 8): 13.0}


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.recv(65536)  # greeting
    sock.sendall(b'{"execute": "qmp_capabilities"}\n')
    sock.recv(65536)
    return sock


def ping_pong(path: str, seconds: float) -> float:
    sock = connect(path)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        sock.sendall(REQUEST)
        data = sock.recv(65536)
        while not data.endswith(REPLY_END):
            data += sock.recv(65536)
        count += 1
        if count % 64 == 0 and time.perf_counter() > deadline:
            break
    elapsed = time.perf_counter() - start
    sock.close()
    return count / elapsed


def pipelined(path: str, seconds: float, window: int) -> float:
    sock = connect(path)
    sent = received = 0
    burst = REQUEST * window
    start = time.perf_counter()
    deadline = start + seconds
    sock.sendall(burst)
    sent += window
    pending = b""
    while True:
        data = sock.recv(1 << 20)
        pending += data
        lines = pending.count(REPLY_END)
        if lines:
            received += lines
            pending = pending[pending.rfind(REPLY_END) + 1:]
        if time.perf_counter() > deadline:
            break
        if sent - received < window // 2:
            sock.sendall(burst)
            sent += window
    elapsed = time.perf_counter() - start
    while received < sent:
        data = sock.recv(1 << 20)
        received += data.count(REPLY_END)
    sock.close()
    return received / elapsed


def verdict(ratio: float, target: float) -> str:
    return f"(target >= {target:g}x: {'pass' if ratio >= target else 'MISS'})"


def _worker(args: tuple[str, str, float, int]) -> float:
    mode, path, seconds, window = args
    return ping_pong(path, seconds) if mode == "ping-pong" else pipelined(path, seconds, window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--connections", type=int, default=8)
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="qjobd-bench-"))
    processes = []
    paths: dict[str, str] = {}
    try:
        for kind in available_daemons():
            process, path = start_daemon(kind, workdir)
            processes.append(process)
            paths[kind] = str(path)

        rates: dict[tuple[str, str], float] = {}
        for mode in ("ping-pong", "pipelined"):
            for name, path in paths.items():
                rate = _worker((mode, path, options.seconds, options.window))
                rates[(name, mode)] = rate
                print(f"{name:6} {mode:10} 1 connection : {rate:10,.0f} commands/s")
            if "qsd" in paths:
                ratio = rates[("qjobd", mode)] / rates[("qsd", mode)]
                print(f"       {mode:10} ratio qjobd/qsd: {ratio:.2f}x"
                      f" {verdict(ratio, TARGETS[(mode, 1)])}")

        n = options.connections
        for mode in ("ping-pong", "pipelined"):
            with multiprocessing.Pool(n) as pool:
                parts = pool.map(
                    _worker, [(mode, paths["qjobd"], options.seconds, options.window)] * n
                )
            total = sum(parts)
            print(f"qjobd  {mode:10} {n} connections: {total:10,.0f} commands/s in all")
            if "qsd" in paths:
                ratio = total / rates[("qsd", mode)]
                print(f"       {mode:10} ratio vs qsd's one connection: {ratio:.2f}x"
                      f" {verdict(ratio, TARGETS[(mode, 8)])}")
    finally:
        stop_daemons(processes)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

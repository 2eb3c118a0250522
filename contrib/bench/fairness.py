#!/usr/bin/env python3
"""Fairness and memory bounds while other clients pipeline costly commands.

Two scenarios, each on a fresh daemon:

busy
    ``--hogs`` clients (4) pipeline ``query-qmp-schema`` as fast as they can, each
    keeping ``--window`` requests (2,000) in flight and reading every reply.  Meanwhile
    probe clients connect one after another: the time to the greeting, then the round
    trip of each of ``--pings`` ping-pong ``query-jobs``.
flood
    ``--flood`` clients (16) each send ``--flood-requests`` (5,000) ``query-qmp-schema``
    and never read.  Once the daemon's memory has stopped growing, the same probes run;
    the daemon's resident memory is sampled throughout.

Targets: greeting within 100 ms and ping-pong p99 within 50 ms in both scenarios; the
flood grows the daemon's resident memory by at most 64 MiB.

    python contrib/bench/fairness.py [--qsd] [--hogs 4] [--flood 16] ...

With ``--qsd`` the scenarios also run against qemu-storage-daemon for reference.  A QSD
monitor serves one connection at a time, so QSD gets one monitor per client (which
QEMU serves round robin); it keeps no bound on a monitor's unsent output, so its flood
runs with ``--qsd-flood-requests`` (500) to keep the machine alive.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import selectors
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchlib import available_daemons, rss_bytes, start_daemon_sockets, stop_daemons

MiB = 1 << 20
SCHEMA = b'{"execute": "query-qmp-schema"}\n'
PING = b'{"execute": "query-jobs"}\n'
NEGOTIATE = b'{"execute": "qmp_capabilities"}\n'

GREETING_TARGET_MS = 100.0
P99_TARGET_MS = 50.0
RSS_TARGET_MIB = 64.0
#: How long a probe waits for any one message before it counts as missing.
PROBE_TIMEOUT = 10.0


class Probe:
    """A blocking client that times its greeting and its round trips."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(PROBE_TIMEOUT)
        self.buffer = b""
        start = time.perf_counter()
        self.sock.connect(str(path))
        self.line()
        self.greeting_ms = (time.perf_counter() - start) * 1e3
        self.sock.sendall(NEGOTIATE)
        self.line()

    def line(self) -> bytes:
        while b"\n" not in self.buffer:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("daemon closed the connection")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def ping(self) -> float:
        start = time.perf_counter()
        self.sock.sendall(PING)
        self.line()
        return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        self.sock.close()


def run_probes(path: Path, probes: int, pings: int) -> tuple[list[float], list[float]]:
    """Greeting times and round-trip times (ms); a timeout counts as infinite."""
    greetings: list[float] = []
    trips: list[float] = []
    for _ in range(probes):
        try:
            probe = Probe(path)
        except (TimeoutError, OSError, EOFError):
            greetings.append(float("inf"))
            continue
        greetings.append(probe.greeting_ms)
        try:
            for _ in range(pings):
                trips.append(probe.ping())
        except (TimeoutError, OSError, EOFError):
            trips.append(float("inf"))
        finally:
            probe.close()
        time.sleep(0.05)
    return greetings, trips


def hog(path: str, window: int, ready: multiprocessing.synchronize.Event,
        stop: multiprocessing.synchronize.Event, counter: multiprocessing.sharedctypes.Synchronized
        ) -> None:
    """Pipeline query-qmp-schema with ``window`` in flight, reading every reply.

    Non-blocking both ways, so it never stops reading because it is blocked writing.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(NEGOTIATE)
    seen = b""
    while seen.count(b"\n") < 2:
        seen += sock.recv(1 << 16)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    pending = SCHEMA * window
    in_flight = window
    received = 0
    ready.set()
    while not stop.is_set():
        for _, mask in selector.select(0.1):
            if mask & selectors.EVENT_READ:
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    return
                replies = data.count(b"\n")
                received += replies
                in_flight -= replies
                if in_flight < window // 2:
                    pending += SCHEMA * (window - in_flight)
                    in_flight = window
            if mask & selectors.EVENT_WRITE and pending:
                try:
                    sent = sock.send(pending)
                except BlockingIOError:
                    sent = 0
                pending = pending[sent:]
        selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0))
        with counter.get_lock():
            counter.value = received
    sock.close()


@contextmanager
def hogs(paths: list[Path], window: int) -> Iterator[multiprocessing.sharedctypes.Synchronized]:
    """Run one hog process per path; yields the replies they have received in all."""
    stop = multiprocessing.Event()
    counters = [multiprocessing.Value("q", 0) for _ in paths]
    processes = []
    for path, counter in zip(paths, counters, strict=True):
        ready = multiprocessing.Event()
        process = multiprocessing.Process(
            target=hog, args=(str(path), window, ready, stop, counter), daemon=True)
        process.start()
        processes.append(process)
        if not ready.wait(30):
            raise SystemExit("a hog could not start")
    total = multiprocessing.Value("q", 0)

    def add_up() -> None:
        while not stop.is_set():
            total.value = sum(counter.value for counter in counters)
            time.sleep(0.05)

    threading.Thread(target=add_up, daemon=True).start()
    try:
        yield total
    finally:
        stop.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def flood(paths: list[Path], requests: int) -> list[socket.socket]:
    """Clients that send ``requests`` query-qmp-schema each and never read."""
    socks = []
    for path in paths:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        sock.sendall(NEGOTIATE)
        socks.append(sock)
        # The daemon stops reading once the replies pile up: send from a thread.
        threading.Thread(target=_send_quietly, args=(sock, SCHEMA * requests),
                         daemon=True).start()
    return socks


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


class RSSSampler:
    """Samples a process's resident memory every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = [rss_bytes(pid)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.samples.append(rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return

    def settle(self, quiet: float = 1.5, limit: float = 30.0) -> None:
        """Wait until the resident memory has not grown for ``quiet`` seconds."""
        deadline = time.monotonic() + limit
        peak, since = 0, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            current = max(self.samples)
            if current > peak:
                peak, since = current, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.samples)


def p99(values: list[float]) -> float:
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


Row = tuple[str, str, str, str, str, str]


def latency_rows(scenario: str, kind: str, greetings: list[float],
                 trips: list[float]) -> list[Row]:
    worst = max(greetings)
    late = p99(trips)
    return [
        (scenario, kind, "greeting, worst of probes", f"{worst:.1f} ms",
         f"<= {GREETING_TARGET_MS:.0f} ms", verdict(worst <= GREETING_TARGET_MS)),
        (scenario, kind, f"ping-pong p99 ({len(trips)} trips)", f"{late:.1f} ms",
         f"<= {P99_TARGET_MS:.0f} ms", verdict(late <= P99_TARGET_MS)),
        (scenario, kind, "ping-pong median / max",
         f"{statistics.median(trips):.2f} / {max(trips):.1f} ms", "", ""),
    ]


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def busy(kind: str, workdir: Path, options: argparse.Namespace) -> list[Row]:
    process, paths = start_daemon_sockets(kind, workdir, options.hogs + 1)
    try:
        with hogs(paths[:options.hogs], options.window) as received:
            time.sleep(options.warmup)
            before, start = received.value, time.perf_counter()
            greetings, trips = run_probes(paths[-1], options.probes, options.pings)
            rate = (received.value - before) / (time.perf_counter() - start)
    finally:
        stop_daemons([process])
    return [*latency_rows("busy", kind, greetings, trips),
            ("busy", kind, f"hogs' schema replies ({options.hogs} clients)",
             f"{rate:,.0f} /s", "", "")]


def flooded(kind: str, workdir: Path, options: argparse.Namespace) -> list[Row]:
    requests = options.flood_requests if kind == "qjobd" else options.qsd_flood_requests
    process, paths = start_daemon_sockets(kind, workdir, options.flood + 1)
    socks: list[socket.socket] = []
    try:
        # Warm up (qjobd encodes the schema reply once), then take the baseline.
        warm = Probe(paths[-1])
        warm.sock.sendall(SCHEMA)
        warm.line()
        warm.close()
        time.sleep(0.3)
        baseline = rss_bytes(process.pid)
        sampler = RSSSampler(process.pid)
        socks = flood(paths[:options.flood], requests)
        sampler.settle()
        greetings, trips = run_probes(paths[-1], options.probes, options.pings)
        peak = sampler.stop()
    finally:
        for sock in socks:
            sock.close()
        stop_daemons([process])
    growth = (peak - baseline) / MiB
    label = f"{options.flood} x {requests:,}"
    return [*latency_rows(f"flood {label}", kind, greetings, trips),
            (f"flood {label}", kind, "resident memory growth",
             f"{growth:.1f} MiB (from {baseline / MiB:.0f})", f"<= {RSS_TARGET_MIB:.0f} MiB",
             verdict(growth <= RSS_TARGET_MIB) if kind == "qjobd" else "(reference)")]


def print_table(rows: list[Row]) -> None:
    header: Row = ("scenario", "daemon", "measure", "value", "target", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=4)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--flood", type=int, default=16)
    parser.add_argument("--flood-requests", type=int, default=5000)
    parser.add_argument("--qsd-flood-requests", type=int, default=500)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--qsd", action="store_true", help="also measure QSD for reference")
    options = parser.parse_args()

    kinds = ["qjobd"]
    if options.qsd and "qsd" in available_daemons():
        kinds.append("qsd")
    rows: list[Row] = []
    for kind in kinds:
        for scenario in (busy, flooded):
            workdir = Path(tempfile.mkdtemp(prefix="qjobd-fair-"))
            try:
                rows += scenario(kind, workdir, options)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()

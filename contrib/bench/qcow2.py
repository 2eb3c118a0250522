#!/usr/bin/env python3
"""qcow2 throughput of qjobd against qemu-storage-daemon, in one run.

Cases, each a blockdev-backup (sync=full) timed from the command to the job's
BLOCK_JOB_COMPLETED, warm (page cache not dropped), median of --repeat runs:

1. read:   a qcow2 image of 1 GiB random data to a sparse 1 GiB raw target;
2. write:  a 1 GiB random raw image to a new empty 1 GiB qcow2 target (next to it
           the time of ``cp --sparse=always`` of the raw image: the disk's limit);
3. sparse: a 4 GiB qcow2 image holding 256 MiB of data in 16 extents of 16 MiB to
           an empty 4 GiB qcow2 target;
4. chain:  base.qcow2 (512 MiB random) <- top.qcow2 (64 MiB written by qemu-io with
           -P patterns at each of a few offsets, one not cluster aligned), top opened
           with its backing file from the header, to a sparse raw target.

Every target is fresh (one per run and daemon); after each run ``qemu-img check``
must find every qcow2 target clean and ``qemu-img compare`` must find the target
identical to the source.  Prints seconds and qjobd/QSD ratios.

    python contrib/bench/qcow2.py [--dir DIR] [--repeat N] [--random-mib N]
                                  [--sparse-mib N] [--base-mib N]

Targets: qjobd <= 1.5x QSD's time for every case (soft: qjobd is pure Python).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import available_daemons, start_daemon, stop_daemons

MiB = 1 << 20
GiB = 1 << 30
TARGET_RATIO = 1.5


class Client:
    """Minimal blocking QMP client that timestamps every message it receives."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buffer = b""
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.receive()
        self.command("qmp_capabilities")

    def receive(self, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.sock], [], [], max(0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no message from the daemon")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("daemon closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        if "event" in message:
            self.events.append((time.perf_counter(), message))
        return message

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        request: dict[str, Any] = {"execute": name}
        if arguments is not None:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self.receive()
            if "event" in message:
                continue
            if "error" in message:
                raise RuntimeError(f"{name}: {message['error']['desc']}")
            return message["return"]

    def wait_event(self, name: str, job: str, status: str | None = None,
                   after: int = 0) -> tuple[float, dict[str, Any]]:
        """perf_counter time and data of the first matching event at index >= ``after``."""
        index = after
        while True:
            while index < len(self.events):
                stamp, event = self.events[index]
                index += 1
                data = event.get("data", {})
                if event["event"] != name or job not in (data.get("id"), data.get("device")):
                    continue
                if status is None or data.get("status") == status:
                    return stamp, data
            self.receive()


@dataclass
class Case:
    """One benchmark case: a source node and how to make a fresh target."""

    label: str
    source: Path
    source_options: dict[str, Any]
    source_format: str
    target_format: str
    size: int


def qemu_img(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *arguments], capture_output=True, text=True)


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // (4 * MiB)):
            out.write(os.urandom(4 * MiB))
        out.write(os.urandom(size % (4 * MiB)))


def convert_to_qcow2(raw: Path, qcow2: Path) -> None:
    partial = qcow2.with_suffix(".partial")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(partial)],
                   check=True)
    partial.rename(qcow2)


def make_images(directory: Path, random_size: int, sparse_size: int,
                base_size: int) -> tuple[dict[str, Case], Path]:
    """The four cases' sources (kept when they exist already) and the random raw image."""
    random_raw = directory / f"random-{random_size // MiB}m.raw"
    random_qcow2 = directory / f"random-{random_size // MiB}m.qcow2"
    sparse_raw = directory / f"sparse-{sparse_size // MiB}m.raw"
    sparse_qcow2 = directory / f"sparse-{sparse_size // MiB}m.qcow2"
    base_raw = directory / f"base-{base_size // MiB}m.raw"
    base = directory / f"base-{base_size // MiB}m.qcow2"
    top = directory / f"top-{base_size // MiB}m.qcow2"
    if not random_raw.exists():
        write_random(random_raw.with_suffix(".partial"), random_size)
        random_raw.with_suffix(".partial").rename(random_raw)
    if not random_qcow2.exists():
        convert_to_qcow2(random_raw, random_qcow2)
    if not sparse_qcow2.exists():
        # 1/16 of the image as data, in 16 extents spread evenly over it.
        extent = sparse_size // 256
        with sparse_raw.open("wb") as out:
            out.truncate(sparse_size)
            for index in range(16):
                out.seek(index * (sparse_size // 16))
                out.write(os.urandom(extent))
        convert_to_qcow2(sparse_raw, sparse_qcow2)
        sparse_raw.unlink()
    if not top.exists():
        write_random(base_raw, base_size)
        convert_to_qcow2(base_raw, base)
        base_raw.unlink()
        partial = top.with_suffix(".partial")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name,
                        "-F", "qcow2", str(partial)], check=True, cwd=directory)
        # 64 MiB (an eighth of the image by default) at a few offsets, the last one
        # half a cluster off alignment so that qemu-io copies on write from the base.
        chunk = max(base_size // 8, 64 * 1024)
        writes = [(0, 0xA1), (base_size * 3 // 8, 0xB2), (base_size * 3 // 4 + 32768, 0xC3)]
        commands = []
        for offset, pattern in writes:
            length = min(chunk, base_size - offset)
            commands += ["-c", f"write -q -P {pattern:#x} {offset} {length}"]
        subprocess.run(["qemu-io", "-f", "qcow2", *commands, str(partial)], check=True)
        # Keep the relative backing name: the header names "base-….qcow2".
        partial.rename(top)

    def qcow2_options(path: Path) -> dict[str, Any]:
        return {"driver": "qcow2", "read-only": True,
                "file": {"driver": "file", "filename": str(path)}}

    cases = {
        "read": Case("1 read", random_qcow2, qcow2_options(random_qcow2), "qcow2", "raw",
                     random_size),
        "write": Case("2 write", random_raw,
                      {"driver": "raw", "read-only": True,
                       "file": {"driver": "file", "filename": str(random_raw)}},
                      "raw", "qcow2", random_size),
        "sparse": Case("3 sparse", sparse_qcow2, qcow2_options(sparse_qcow2), "qcow2",
                       "qcow2", sparse_size),
        "chain": Case("4 chain", top, qcow2_options(top), "qcow2", "raw", base_size),
    }
    return cases, random_raw


def make_target(case: Case, target: Path) -> dict[str, Any]:
    if case.target_format == "qcow2":
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(target), str(case.size)],
                       check=True)
    else:
        subprocess.run(["truncate", "-s", str(case.size), str(target)], check=True)
    return {"driver": case.target_format, "node-name": "dst",
            "file": {"driver": "file", "filename": str(target)}}


def run_backup(client: Client, case: Case, target: Path, tag: str) -> float:
    """Seconds from blockdev-backup to BLOCK_JOB_COMPLETED; the nodes are gone after."""
    target_options = make_target(case, target)
    source, destination = f"src{tag}", f"dst{tag}"
    client.command("blockdev-add", {**case.source_options, "node-name": source})
    client.command("blockdev-add", {**target_options, "node-name": destination})
    os.sync()  # no writeback of earlier runs during this one
    job = f"job{tag}"
    mark = len(client.events)
    began = time.perf_counter()
    client.command("blockdev-backup", {"job-id": job, "device": source,
                                       "target": destination, "sync": "full"})
    ended, data = client.wait_event("BLOCK_JOB_COMPLETED", job, after=mark)
    client.wait_event("JOB_STATUS_CHANGE", job, "null", after=mark)
    client.command("blockdev-del", {"node-name": source})
    client.command("blockdev-del", {"node-name": destination})
    if "error" in data:
        raise RuntimeError(f"{job} failed: {data['error']}")
    if data.get("offset") != data.get("len"):
        raise RuntimeError(f"{job} stopped at {data.get('offset')} of {data.get('len')}")
    return ended - began


def verify(case: Case, target: Path, who: str) -> list[str]:
    """Print qemu-img check of a qcow2 target and compare it with the source.

    Returns the failures found (empty when all is well).
    """
    failures = []
    if case.target_format == "qcow2":
        check = qemu_img("check", "-f", "qcow2", str(target))
        summary = " ".join(line.strip() for line in check.stdout.splitlines() if line.strip())
        clean = check.returncode == 0 and "No errors were found" in check.stdout
        state = "clean" if clean else f"NOT CLEAN (exit {check.returncode})"
        print(f"    check   {who:9} {state}: {summary} {check.stderr.strip()}".rstrip())
        if not clean:
            failures.append(f"{who}: qemu-img check exit {check.returncode}: {check.stdout}"
                            f"{check.stderr}")
    compare = qemu_img("compare", "-f", case.source_format, "-F", case.target_format,
                       str(case.source), str(target))
    message = " ".join((compare.stdout + compare.stderr).split())
    if compare.returncode == 0:
        print(f"    compare {who:9} identical")
    else:
        print(f"    compare {who:9} FAILED (exit {compare.returncode}): {message}")
        failures.append(f"{who}: qemu-img compare exit {compare.returncode}: {message}")
    return failures


def time_cp(source: Path, directory: Path, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        target = directory / "cp-target.raw"
        os.sync()
        began = time.perf_counter()
        subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)
        runs.append(time.perf_counter() - began)
        target.unlink()
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to keep the images (default: a temporary directory under "
                             "/var/tmp, removed afterwards; sources in DIR are reused)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--random-mib", type=int, default=1024,
                        help="size of the random image of cases 1 and 2")
    parser.add_argument("--sparse-mib", type=int, default=4096,
                        help="size of the sparse image of case 3 (1/16 of it data)")
    parser.add_argument("--base-mib", type=int, default=512,
                        help="size of the backing chain of case 4")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qjobd-bench-"))
    if options.dir is None:
        image_dir = Path(tempfile.mkdtemp(prefix="qjobd-bench-qcow2-", dir="/var/tmp"))
        remove_images = True
    else:
        image_dir = options.dir.resolve()
        image_dir.mkdir(parents=True, exist_ok=True)
        remove_images = False
    kinds = available_daemons()
    processes = []
    failures: list[str] = []
    try:
        began = time.monotonic()
        cases, random_raw = make_images(image_dir, options.random_mib * MiB,
                                        options.sparse_mib * MiB, options.base_mib * MiB)
        os.sync()
        print(f"images in {image_dir} ({time.monotonic() - began:.1f} s to prepare); "
              f"warm runs, median of {options.repeat}")
        clients = {}
        for kind in kinds:
            process, path = start_daemon(kind, workdir)
            processes.append(process)
            clients[kind] = Client(path)
        results: dict[tuple[str, str], float] = {}
        for name, case in cases.items():
            # One untimed pass through the source so that every run reads it warm.
            subprocess.run(["cat", str(case.source)], stdout=subprocess.DEVNULL, check=True)
            if name == "chain":
                base = Path(image_dir, case.source.name.replace("top-", "base-"))
                subprocess.run(["cat", str(base)], stdout=subprocess.DEVNULL, check=True)
            print(f"{case.label}: {case.source.name} ({case.source_format}) -> "
                  f"{case.target_format} target, {case.size / MiB:.0f} MiB")
            runs: dict[str, list[float]] = {kind: [] for kind in kinds}
            for attempt in range(options.repeat):
                for kind in kinds:  # alternate the daemons, run by run
                    target = image_dir / f"{kind}-{name}-{attempt}.{case.target_format}"
                    try:
                        runs[kind].append(run_backup(clients[kind], case, target,
                                                     f"{name}{attempt}"))
                        allocated = target.stat().st_blocks * 512
                        print(f"    run {attempt + 1} {kind:5} {runs[kind][-1]:7.3f} s   "
                              f"target uses {allocated / MiB:7.1f} MiB")
                        failures += [f"{case.label}, run {attempt + 1}, {failure}"
                                     for failure in verify(case, target, kind)]
                    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
                        print(f"    run {attempt + 1} {kind:5} FAILED: {error}")
                        failures.append(f"{case.label}, run {attempt + 1}, {kind}: {error}")
                    finally:
                        target.unlink(missing_ok=True)
            for kind in kinds:
                if runs[kind]:
                    seconds = statistics.median(runs[kind])
                    results[(name, kind)] = seconds
                    rate = case.size / MiB / seconds
                    print(f"{case.label:9} {kind:5} {seconds:7.3f} s (median of "
                          f"{len(runs[kind])})   {rate:7.1f} MiB/s of image")
            if name == "write":
                seconds = time_cp(random_raw, image_dir, options.repeat)
                results[(name, "cp")] = seconds
                print(f"{case.label:9} {'cp':5} {seconds:7.3f} s (median of {options.repeat})"
                      f"   {case.size / MiB / seconds:7.1f} MiB/s  cp --sparse=always of "
                      f"{random_raw.name}")
            if (name, "qjobd") in results and (name, "qsd") in results:
                ratio = results[(name, "qjobd")] / results[(name, "qsd")]
                print(f"{case.label:9} ratio qjobd/qsd: {ratio:.2f}x "
                      f"(target <= {TARGET_RATIO}x)")
        print()
        print("targets:")
        for name, case in cases.items():
            if (name, "qjobd") not in results or (name, "qsd") not in results:
                print(f"  {case.label:9} n/a (no qjobd or no QSD result)")
                continue
            ratio = results[(name, "qjobd")] / results[(name, "qsd")]
            verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
            extra = ""
            if (name, "cp") in results:
                cp = results[(name, "cp")]
                extra = (f"; vs cp: qjobd {results[(name, 'qjobd')] / cp:.2f}x, "
                         f"qsd {results[(name, 'qsd')] / cp:.2f}x")
            print(f"  {verdict} {case.label:9} qjobd/qsd {ratio:.2f}x "
                  f"(target <= {TARGET_RATIO}x){extra}")
        verdict = "PASS" if not failures else f"FAIL ({len(failures)})"
        print(f"  {verdict} every qcow2 target clean and every target identical to its source")
        for failure in failures:
            print(f"    {failure}")
        print(f"total {time.monotonic() - began:.1f} s")
    finally:
        stop_daemons(processes)
        shutil.rmtree(workdir, ignore_errors=True)
        if remove_images:
            shutil.rmtree(image_dir, ignore_errors=True)
        else:
            for leftover in image_dir.glob("*.partial"):
                leftover.unlink()


if __name__ == "__main__":
    main()

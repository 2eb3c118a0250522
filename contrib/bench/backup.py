#!/usr/bin/env python3
"""Backup speed of qjobd against qemu-storage-daemon, in one run.

Cases: blockdev-backup (sync=full) of a 1 GiB random raw image and of a 4 GiB sparse
raw image holding 256 MiB of data, each cold (page cache dropped, when allowed) and
warm, timed from the command to BLOCK_JOB_COMPLETED; the target must stay sparse.
Then a backup limited to 50 MiB/s (achieved rate over ~10 s) and the latency from
job-cancel to the job's ``aborting`` event.  Prints seconds and qjobd/QSD ratios.

    python contrib/bench/backup.py [--dir DIR] [--skip-cold]

Targets: qjobd <= 1.0x QSD's time; rate within 5 % of 50 MiB/s; cancel <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import Client, available_daemons, start_daemon, stop_daemons

MiB = 1 << 20
GiB = 1 << 30


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def make_images(directory: Path) -> dict[str, tuple[Path, int]]:
    random_image = directory / "random-1g.raw"
    sparse_image = directory / "sparse-4g.raw"
    if not random_image.exists():
        with random_image.open("wb") as out:
            for _ in range(GiB // (16 * MiB)):
                out.write(os.urandom(16 * MiB))
    if not sparse_image.exists():
        with sparse_image.open("wb") as out:
            out.truncate(4 * GiB)
            # 256 MiB of data in 64 extents of 4 MiB spread over the image.
            for index in range(64):
                out.seek(index * (4 * GiB // 64))
                out.write(os.urandom(4 * MiB))
    return {"1 GiB random": (random_image, GiB), "4 GiB sparse": (sparse_image, 4 * GiB)}


def run_backup(client: Client, source: Path, target: Path, size: int, tag: str,
               **extra: Any) -> float:
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(target), str(size)], check=True)
    client.command("blockdev-add", {"driver": "raw", "node-name": f"s{tag}",
                                    "file": {"driver": "file", "filename": str(source)}})
    client.command("blockdev-add", {"driver": "raw", "node-name": f"t{tag}",
                                    "file": {"driver": "file", "filename": str(target)}})
    mark = len(client.events)
    began = time.perf_counter()
    client.command("blockdev-backup", {"job-id": f"b{tag}", "device": f"s{tag}",
                                       "target": f"t{tag}", "sync": "full", **extra})
    ended, _ = client.wait_event("JOB_STATUS_CHANGE", f"b{tag}", "concluded", after=mark)
    client.command("blockdev-del", {"node-name": f"s{tag}"})
    client.command("blockdev-del", {"node-name": f"t{tag}"})
    return ended - began


def measure_rate(client: Client, source: Path, target: Path) -> float:
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(target), str(GiB)], check=True)
    client.command("blockdev-add", {"driver": "raw", "node-name": "rs",
                                    "file": {"driver": "file", "filename": str(source)}})
    client.command("blockdev-add", {"driver": "raw", "node-name": "rt",
                                    "file": {"driver": "file", "filename": str(target)}})
    client.command("blockdev-backup", {"job-id": "rate", "device": "rs", "target": "rt",
                                       "sync": "full", "speed": 50 * MiB})
    time.sleep(1.0)  # past the start-up burst

    def offset() -> int:
        jobs = client.command("query-block-jobs")
        return int(next(job["offset"] for job in jobs if job["device"] == "rate"))

    first, t0 = offset(), time.perf_counter()
    time.sleep(10.0)
    last, t1 = offset(), time.perf_counter()
    rate = (last - first) / (t1 - t0) / MiB
    client.command("job-cancel", {"id": "rate"})
    client.wait_event("JOB_STATUS_CHANGE", "rate", "null")
    client.command("blockdev-del", {"node-name": "rs"})
    client.command("blockdev-del", {"node-name": "rt"})
    return rate


def measure_cancel_latency(client: Client, source: Path, target: Path,
                           samples: int = 8) -> list[float]:
    """Milliseconds from job-cancel to ``aborting`` for 50 MiB/s backups, at odd times."""
    latencies = []
    for index in range(samples):
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(target), str(GiB)],
                       check=True)
        client.command("blockdev-add", {"driver": "raw", "node-name": f"cs{index}",
                                        "file": {"driver": "file", "filename": str(source)}})
        client.command("blockdev-add", {"driver": "raw", "node-name": f"ct{index}",
                                        "file": {"driver": "file", "filename": str(target)}})
        client.command("blockdev-backup", {"job-id": f"c{index}", "device": f"cs{index}",
                                           "target": f"ct{index}", "sync": "full",
                                           "speed": 50 * MiB})
        time.sleep(0.3 + 0.037 * index)  # land at different points of the rate cycle
        mark = len(client.events)
        sent = time.perf_counter()
        client.command("job-cancel", {"id": f"c{index}"})
        aborting, _ = client.wait_event("JOB_STATUS_CHANGE", f"c{index}", "aborting",
                                        after=mark)
        client.wait_event("JOB_STATUS_CHANGE", f"c{index}", "null", after=mark)
        latencies.append((aborting - sent) * 1000)
        client.command("blockdev-del", {"node-name": f"cs{index}"})
        client.command("blockdev-del", {"node-name": f"ct{index}"})
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to keep the test images (default: a temporary directory)")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qjobd-bench-"))
    image_dir = options.dir or workdir
    image_dir.mkdir(parents=True, exist_ok=True)
    kinds = available_daemons()
    processes = []
    try:
        images = make_images(image_dir)
        clients = {}
        for kind in kinds:
            process, path = start_daemon(kind, workdir)
            processes.append(process)
            clients[kind] = Client(path)
        results: dict[tuple[str, str, str], float] = {}
        modes = ["warm"] if options.skip_cold else ["cold", "warm"]
        for label, (source, size) in images.items():
            for mode in modes:
                for kind in kinds:
                    runs = []
                    for attempt in range(options.repeat):
                        if mode == "cold" and not drop_caches():
                            print("cannot drop caches (not root?): cold runs are warm")
                        target = workdir / f"{kind}-target.raw"
                        runs.append(run_backup(clients[kind], source, target, size,
                                               f"{kind}{mode}{size}{attempt}"))
                        allocated = target.stat().st_blocks * 512
                        target.unlink()
                    seconds = statistics.median(runs)
                    results[(label, mode, kind)] = seconds
                    print(f"{label:13} {mode:4} {kind:5} {seconds:7.3f} s (median of "
                          f"{len(runs)})   target uses {allocated / MiB:7.1f} MiB")
                if "qsd" in kinds:
                    ratio = results[(label, mode, "qjobd")] / results[(label, mode, "qsd")]
                    print(f"{label:13} {mode:4} ratio qjobd/qsd: {ratio:.2f}x (target <= 1.0x)")
        random_image = images["1 GiB random"][0]
        for kind in kinds:
            rate = measure_rate(clients[kind], random_image, workdir / f"{kind}-rate.raw")
            print(f"{kind:5} 50 MiB/s limit: achieved {rate:6.2f} MiB/s "
                  f"({(rate / 50 - 1) * 100:+.1f} %)")
        for kind in kinds:
            latencies = sorted(measure_cancel_latency(
                clients[kind], random_image, workdir / f"{kind}-cancel.raw"
            ))
            print(f"{kind:5} job-cancel -> aborting: median {statistics.median(latencies):.2f} ms,"
                  f" max {latencies[-1]:.2f} ms over {len(latencies)} runs")
    finally:
        stop_daemons(processes)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

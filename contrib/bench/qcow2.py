#!/usr/bin/env python3
"""qcow2 throughput of qjobd against qemu-storage-daemon, in one run.

Cases 1 to 4, each a blockdev-backup (sync=full) timed from the command to the job's
BLOCK_JOB_COMPLETED, warm (page cache not dropped), median of --repeat runs:

1. read:   a qcow2 image of 1 GiB random data to a sparse 1 GiB raw target;
2. write:  a 1 GiB random raw image to a new empty 1 GiB qcow2 target (next to it
           the time of ``cp --sparse=always`` of the raw image: the disk's limit);
3. sparse: a 4 GiB qcow2 image holding 256 MiB of data in 16 extents of 16 MiB to
           an empty 4 GiB qcow2 target;
4. chain:  base.qcow2 (512 MiB random) <- top.qcow2 (64 MiB written by qemu-io with
           -P patterns at each of a few offsets, one not cluster aligned), top opened
           with its backing file from the header, to a sparse raw target.

Cases 5 to 7, the other jobs on qcow2, warm too, median of --job-repeat runs:

5. commit: active commit (block-commit of the top, no base given) of top.qcow2 into
           base.qcow2: base 256 MiB of random data, top as large and all of it written
           by qemu-io in 16 writes of 16 MiB, each with its own -P pattern; top opened
           with its backing file from the header.  The case's time is from the command
           to BLOCK_JOB_READY; job-complete follows and the time to BLOCK_JOB_COMPLETED
           (from the command) is shown too;
6. stream: block-stream of the whole chain l0 <- l1 <- l2 <- l3 (256 MiB images) into
           l3, opened with its chain from the headers: l0 holds 128 MiB of random data
           in 8 extents of 16 MiB, l1 and l2 each 128 MiB written by qemu-io in 16 MiB
           writes with -P patterns over and between l0's extents (one write not
           cluster aligned), l3 is empty; timed to BLOCK_JOB_COMPLETED;
7. dense:  drive-backup (sync=full, format=qcow2) of case 1's source to a qcow2 image
           the daemon creates; timed to BLOCK_JOB_COMPLETED.

Every target is fresh (one per run and daemon); cases 5 and 6 change their images, so
each run works on its own copy of images made once.  After each run ``qemu-img
check`` must find every qcow2 the job wrote clean and ``qemu-img compare`` must find
the target identical to the source: for cases 5 and 6 to a raw image of what the top
showed before the job (``qemu-img convert -O raw``), and ``qemu-img info`` must show
l3 without a backing file after case 6.  Prints seconds and qjobd/QSD ratios.

    python contrib/bench/qcow2.py [--dir DIR] [--repeat N] [--job-repeat N]
                                  [--random-mib N] [--sparse-mib N] [--base-mib N]
                                  [--commit-mib N] [--stream-mib N]
                                  [--cases NAME,...]

``--cases`` runs only the named cases (read, write, sparse, chain, commit, stream,
dense); the images of the others are still made (once, when missing).

Targets: qjobd <= 1.5x QSD's time for cases 1 to 4 (soft: qjobd is pure Python) and
<= 1.0x for cases 5 to 7.
"""

from __future__ import annotations

import abc
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from benchlib import Client, available_daemons, start_daemon, stop_daemons

MiB = 1 << 20
GiB = 1 << 30
TARGET_RATIO = 1.5
JOB_TARGET_RATIO = 1.0  # cases 5 to 7
CASE_NAMES = ("read", "write", "sparse", "chain", "commit", "stream", "dense")


@attrs.define
class Case:
    """One benchmark case: a source node and how to make a fresh target."""

    label: str
    source: Path
    source_options: dict[str, Any]
    source_format: str
    target_format: str
    size: int
    #: Files read once, untimed, before the runs besides the source (a backing file).
    also_warm: tuple[Path, ...] = ()


@attrs.define
class Outcome:
    """What one timed run measured."""

    seconds: float  # the case's number
    written: Path  # the image the job wrote
    total: float | None = None  # active commit: from the command to BLOCK_JOB_COMPLETED


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


def create_overlay(directory: Path, name: str, backing: str) -> Path:
    """An empty qcow2 ``name`` in ``directory`` whose header names ``backing`` (relative)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2",
                    name], check=True, cwd=directory)
    return directory / name


def qemu_io_writes(image: Path, writes: list[tuple[int, int, int]]) -> None:
    """(offset, length, pattern) writes into the qcow2 ``image``, in one qemu-io."""
    commands = []
    for offset, length, pattern in writes:
        commands += ["-c", f"write -q -P {pattern:#x} {offset} {length}"]
    subprocess.run(["qemu-io", "-f", "qcow2", *commands, str(image)], check=True)


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
        partial = create_overlay(directory, top.with_suffix(".partial").name, base.name)
        # 64 MiB (an eighth of the image by default) at a few offsets, the last one
        # half a cluster off alignment so that qemu-io copies on write from the base.
        chunk = max(base_size // 8, 64 * 1024)
        writes = [(0, 0xA1), (base_size * 3 // 8, 0xB2), (base_size * 3 // 4 + 32768, 0xC3)]
        qemu_io_writes(partial, [(offset, min(chunk, base_size - offset), pattern)
                                 for offset, pattern in writes])
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
        "chain": Case("4 chain", top, qcow2_options(top), "qcow2", "raw", base_size,
                      also_warm=(base,)),
        "dense": Case("7 dense", random_qcow2, qcow2_options(random_qcow2), "qcow2",
                      "qcow2", random_size),
    }
    return cases, random_raw


def make_image_set(directory: Path, name: str, build: Callable[[Path], None]) -> Path:
    """The directory ``name`` in ``directory`` that ``build(path)`` fills (kept if there)."""
    final = directory / name
    if not final.exists():
        partial = directory / f"{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        build(partial)
        partial.rename(final)
    return final


def build_commit_images(directory: Path, size: int) -> None:
    """base.qcow2 (random) <- top.qcow2, all of top written in 16 writes, 16 patterns."""
    write_random(directory / "base.raw", size)
    convert_to_qcow2(directory / "base.raw", directory / "base.qcow2")
    (directory / "base.raw").unlink()
    top = create_overlay(directory, "top.qcow2", "base.qcow2")
    extent = size // 16
    qemu_io_writes(top, [(index * extent, extent, 0x11 + index) for index in range(16)])


def build_stream_images(directory: Path, size: int) -> None:
    """l0 <- l1 <- l2 <- l3, each of l0, l1, l2 half the image's data, l3 empty.

    With e = size/16: l0 has random data in e-long extents at 0, 2e, 4e ... (eight);
    l1 writes e at e/2, 2.5e, 4.5e ... (over half of each l0 extent and half of the
    hole after it; the one at 10.5e is half a cluster further, so qemu-io copies on
    write from l0); l2 writes e at 0, e, ... 7e (the first half of the image).
    """
    extent = size // 16
    raw = directory / "l0.raw"
    with raw.open("wb") as out:
        out.truncate(size)
        for index in range(8):
            out.seek(2 * index * extent)
            out.write(os.urandom(extent))
    convert_to_qcow2(raw, directory / "l0.qcow2")
    raw.unlink()
    l1 = create_overlay(directory, "l1.qcow2", "l0.qcow2")
    qemu_io_writes(l1, [(2 * index * extent + extent // 2 + (32768 if index == 5 else 0),
                         extent, 0x21 + index) for index in range(8)])
    l2 = create_overlay(directory, "l2.qcow2", "l1.qcow2")
    qemu_io_writes(l2, [(index * extent, extent, 0x41 + index) for index in range(8)])
    create_overlay(directory, "l3.qcow2", "l2.qcow2")


def make_target(case: Case, target: Path) -> dict[str, Any]:
    if case.target_format == "qcow2":
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(target), str(case.size)],
                       check=True)
    else:
        subprocess.run(["truncate", "-s", str(case.size), str(target)], check=True)
    return {"driver": case.target_format, "node-name": "dst",
            "file": {"driver": "file", "filename": str(target)}}


def finish_job(client: Client, job: str, mark: int) -> float:
    """perf_counter time of ``job``'s BLOCK_JOB_COMPLETED once it is gone; raises if it
    failed or stopped short."""
    ended, data = client.wait_event("BLOCK_JOB_COMPLETED", job, after=mark)
    client.wait_event("JOB_STATUS_CHANGE", job, "null", after=mark)
    if "error" in data:
        raise RuntimeError(f"{job} failed: {data['error']}")
    if data.get("offset") != data.get("len"):
        raise RuntimeError(f"{job} stopped at {data.get('offset')} of {data.get('len')}")
    return ended


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


def delete_after_failure(client: Client, node: str) -> None:
    """blockdev-del of ``node`` after a job on it failed, whether it can go or not."""
    try:
        client.command("blockdev-del", {"node-name": node})
    except RuntimeError as error:
        print(f"    (after the failure: {error})")


def run_drive_backup(client: Client, case: Case, target: Path, tag: str) -> float:
    """Seconds from drive-backup (the daemon creates ``target``) to BLOCK_JOB_COMPLETED."""
    source = f"src{tag}"
    client.command("blockdev-add", {**case.source_options, "node-name": source})
    os.sync()
    job = f"job{tag}"
    mark = len(client.events)
    began = time.perf_counter()
    try:
        client.command("drive-backup", {"job-id": job, "device": source, "sync": "full",
                                        "format": case.target_format,
                                        "target": str(target)})
        ended = finish_job(client, job, mark)
    except RuntimeError:
        delete_after_failure(client, source)
        raise
    client.command("blockdev-del", {"node-name": source})
    return ended - began


def check_qcow2(image: Path, who: str, name: str = "") -> list[str]:
    """Print qemu-img check of ``image``; the failure found, if any."""
    check = qemu_img("check", "-f", "qcow2", str(image))
    summary = " ".join(line.strip() for line in check.stdout.splitlines() if line.strip())
    clean = check.returncode == 0 and "No errors were found" in check.stdout
    state = "clean" if clean else f"NOT CLEAN (exit {check.returncode})"
    what = f"{name} " if name else ""
    print(f"    check   {who:9} {what}{state}: {summary} {check.stderr.strip()}".rstrip())
    if clean:
        return []
    return [f"{who}: qemu-img check {what}exit {check.returncode}: {check.stdout}"
            f"{check.stderr}"]


def compare(first: Path, first_format: str, second: Path, second_format: str,
            who: str) -> list[str]:
    """Print qemu-img compare of two images; the failure found, if any."""
    result = qemu_img("compare", "-f", first_format, "-F", second_format, str(first),
                      str(second))
    message = " ".join((result.stdout + result.stderr).split())
    if result.returncode == 0:
        print(f"    compare {who:9} identical")
        return []
    print(f"    compare {who:9} FAILED (exit {result.returncode}): {message}")
    return [f"{who}: qemu-img compare exit {result.returncode}: {message}"]


def verify(case: Case, target: Path, who: str) -> list[str]:
    """Print qemu-img check of a qcow2 target and compare it with the source.

    Returns the failures found (empty when all is well).
    """
    failures = []
    if case.target_format == "qcow2":
        failures += check_qcow2(target, who)
    failures += compare(case.source, case.source_format, target, case.target_format, who)
    return failures


def snapshot_raw(image: Path, raw: Path) -> None:
    """What the qcow2 ``image`` (with its backing chain) shows, as a sparse raw image."""
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(image), str(raw)],
                   check=True)


class Bench(abc.ABC):
    """One case, run once per attempt and daemon."""

    target_ratio = JOB_TARGET_RATIO
    repeat_option = "job_repeat"  # the option that says how many runs

    def __init__(self, name: str, label: str, size: int, directory: Path) -> None:
        self.name, self.label, self.size, self.directory = name, label, size, directory

    @abc.abstractmethod
    def describe(self) -> str:
        """The case's heading."""

    def warm(self) -> list[Path]:
        """The files read once, untimed, before the runs."""
        return []

    def place(self, kind: str, attempt: int) -> Path:
        """Where this run's target or images go."""
        return self.directory / f"{kind}-{self.name}-{attempt}"

    @abc.abstractmethod
    def run(self, client: Client, kind: str, attempt: int) -> Outcome:
        """Make fresh images, time the job; the daemon holds none of them after."""

    @abc.abstractmethod
    def verify(self, kind: str, attempt: int) -> list[str]:
        """Print the checks of what the run wrote; the failures found."""

    def discard(self, kind: str, attempt: int) -> None:
        shutil.rmtree(self.place(kind, attempt), ignore_errors=True)


class BackupBench(Bench):
    """Cases 1 to 4: blockdev-backup of a source to a target made here."""

    target_ratio = TARGET_RATIO
    repeat_option = "repeat"

    def __init__(self, name: str, case: Case, directory: Path) -> None:
        super().__init__(name, case.label, case.size, directory)
        self.case = case

    def describe(self) -> str:
        case = self.case
        return (f"{case.label}: {case.source.name} ({case.source_format}) -> "
                f"{case.target_format} target, {case.size / MiB:.0f} MiB")

    def warm(self) -> list[Path]:
        return [self.case.source, *self.case.also_warm]

    def place(self, kind: str, attempt: int) -> Path:
        return self.directory / f"{kind}-{self.name}-{attempt}.{self.case.target_format}"

    def run(self, client: Client, kind: str, attempt: int) -> Outcome:
        target = self.place(kind, attempt)
        return Outcome(run_backup(client, self.case, target, f"{self.name}{attempt}"),
                       target)

    def verify(self, kind: str, attempt: int) -> list[str]:
        return verify(self.case, self.place(kind, attempt), kind)

    def discard(self, kind: str, attempt: int) -> None:
        self.place(kind, attempt).unlink(missing_ok=True)


class DenseBench(BackupBench):
    """Case 7: drive-backup to a new qcow2 image."""

    target_ratio = JOB_TARGET_RATIO
    repeat_option = "job_repeat"

    def describe(self) -> str:
        case = self.case
        return (f"{case.label}: {case.source.name} ({case.source_format}) -> new "
                f"{case.target_format} image by drive-backup, {case.size / MiB:.0f} MiB")

    def run(self, client: Client, kind: str, attempt: int) -> Outcome:
        target = self.place(kind, attempt)
        target.unlink(missing_ok=True)
        return Outcome(run_drive_backup(client, self.case, target, f"{self.name}{attempt}"),
                       target)


class ChainBench(Bench):
    """A job that changes a chain of images: each run gets a copy of the images in
    ``template``; ``expected.raw`` records what ``shown`` showed before the job."""

    def __init__(self, name: str, label: str, size: int, directory: Path, template: Path,
                 shown: str) -> None:
        super().__init__(name, label, size, directory)
        self.template, self.shown = template, shown

    def warm(self) -> list[Path]:
        return sorted(self.template.iterdir())

    def copy(self, kind: str, attempt: int) -> Path:
        """This run's own images (relative backing names work in the copy too)."""
        place = self.place(kind, attempt)
        shutil.rmtree(place, ignore_errors=True)
        place.mkdir()
        for image in sorted(self.template.iterdir()):
            shutil.copyfile(image, place / image.name)
        snapshot_raw(place / self.shown, place / "expected.raw")
        return place

    def add(self, client: Client, node: str, image: Path) -> None:
        """Open ``image`` writable, its backing chain from the header."""
        client.command("blockdev-add", {"driver": "qcow2", "node-name": node,
                                        "file": {"driver": "file", "filename": str(image)}})


class CommitBench(ChainBench):
    """Case 5: active commit of top.qcow2 into base.qcow2."""

    def describe(self) -> str:
        return (f"{self.label}: block-commit of the active top.qcow2 ({self.size / MiB:.0f} "
                f"MiB written) into base.qcow2 ({self.size / MiB:.0f} MiB random); time to "
                "BLOCK_JOB_READY, then job-complete")

    def run(self, client: Client, kind: str, attempt: int) -> Outcome:
        place = self.copy(kind, attempt)
        node, job = f"top{attempt}", f"c{attempt}"
        self.add(client, node, place / "top.qcow2")
        try:
            os.sync()
            mark = len(client.events)
            began = time.perf_counter()
            client.command("block-commit", {"job-id": job, "device": node})
            ready, event, data = client.wait_events(("BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED"),
                                                    job, after=mark)
            if event != "BLOCK_JOB_READY":
                finish_job(client, job, mark)  # raises when the job failed
                raise RuntimeError(f"{job} completed without BLOCK_JOB_READY: {data}")
            client.command("job-complete", {"id": job})
            ended = finish_job(client, job, mark)
        except RuntimeError:
            delete_after_failure(client, node)
            raise
        client.command("blockdev-del", {"node-name": node})
        return Outcome(ready - began, place / "base.qcow2", ended - began)

    def verify(self, kind: str, attempt: int) -> list[str]:
        place = self.place(kind, attempt)
        failures = check_qcow2(place / "base.qcow2", kind, "base.qcow2")
        failures += check_qcow2(place / "top.qcow2", kind, "top.qcow2")
        failures += compare(place / "expected.raw", "raw", place / "base.qcow2", "qcow2", kind)
        return failures


class StreamBench(ChainBench):
    """Case 6: block-stream of l0 <- l1 <- l2 into l3."""

    def describe(self) -> str:
        return (f"{self.label}: block-stream of l0 <- l1 <- l2 ({self.size / 2 / MiB:.0f} MiB "
                f"of data each) into the empty l3.qcow2, {self.size / MiB:.0f} MiB")

    def run(self, client: Client, kind: str, attempt: int) -> Outcome:
        place = self.copy(kind, attempt)
        node, job = f"l3-{attempt}", f"s{attempt}"
        self.add(client, node, place / "l3.qcow2")
        try:
            os.sync()
            mark = len(client.events)
            began = time.perf_counter()
            client.command("block-stream", {"job-id": job, "device": node})
            ended = finish_job(client, job, mark)
        except RuntimeError:
            delete_after_failure(client, node)
            raise
        client.command("blockdev-del", {"node-name": node})
        return Outcome(ended - began, place / "l3.qcow2")

    def verify(self, kind: str, attempt: int) -> list[str]:
        place = self.place(kind, attempt)
        l3 = place / "l3.qcow2"
        failures = check_qcow2(l3, kind, "l3.qcow2")
        info = qemu_img("info", "--output=json", "-f", "qcow2", str(l3))
        backing = (json.loads(info.stdout).get("backing-filename") if info.returncode == 0
                   else f"(qemu-img info exit {info.returncode}: {info.stderr.strip()})")
        if backing is None:
            print(f"    backing {kind:9} none")
        else:
            print(f"    backing {kind:9} STILL {backing}")
            failures.append(f"{kind}: l3.qcow2 backing file after the stream: {backing}")
        failures += compare(place / "expected.raw", "raw", l3, "qcow2", kind)
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
    parser.add_argument("--repeat", type=int, default=3, help="runs per case 1 to 4 (median)")
    parser.add_argument("--job-repeat", type=int, default=3,
                        help="runs per case 5 to 7 (median)")
    parser.add_argument("--random-mib", type=int, default=1024,
                        help="size of the random image of cases 1, 2 and 7")
    parser.add_argument("--sparse-mib", type=int, default=4096,
                        help="size of the sparse image of case 3 (1/16 of it data)")
    parser.add_argument("--base-mib", type=int, default=512,
                        help="size of the backing chain of case 4")
    parser.add_argument("--commit-mib", type=int, default=256,
                        help="size of base and top of case 5")
    parser.add_argument("--stream-mib", type=int, default=256,
                        help="size of the chain of case 6 (half of it data in l0, l1, l2)")
    parser.add_argument("--cases", default=",".join(CASE_NAMES),
                        help="comma-separated cases to run (default: all of "
                             f"{','.join(CASE_NAMES)})")
    options = parser.parse_args()
    selected = [name.strip() for name in options.cases.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(CASE_NAMES))
    if unknown or not selected:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(CASE_NAMES)}")
    workdir = Path(tempfile.mkdtemp(prefix="qjobd-bench-"))
    if options.dir is None:
        image_dir = Path(tempfile.mkdtemp(prefix="qjobd-bench-qcow2-", dir="/var/tmp"))
        remove_images = True
    else:
        image_dir = options.dir.resolve()
        image_dir.mkdir(parents=True, exist_ok=True)
        remove_images = False
    kinds = available_daemons()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    sockets: dict[str, Path] = {}
    clients: dict[str, Client] = {}
    failures: list[str] = []

    def start(kind: str) -> None:
        if kind in sockets:
            sockets[kind].unlink(missing_ok=True)  # a stale socket would pass for ready
        processes[kind], sockets[kind] = start_daemon(kind, workdir)
        clients[kind] = Client(sockets[kind])

    def restart(kind: str) -> None:
        """A fresh daemon after one died or stopped answering."""
        clients.pop(kind).close()
        if processes[kind].poll() is None:
            stop_daemons([processes[kind]])
        print(f"    {kind} exited with {processes[kind].returncode}; starting it again")
        start(kind)

    try:
        began = time.monotonic()
        cases, random_raw = make_images(image_dir, options.random_mib * MiB,
                                        options.sparse_mib * MiB, options.base_mib * MiB)
        commit_size, stream_size = options.commit_mib * MiB, options.stream_mib * MiB
        commit_images = make_image_set(image_dir, f"commit-{options.commit_mib}m",
                                       lambda path: build_commit_images(path, commit_size))
        stream_images = make_image_set(image_dir, f"stream-{options.stream_mib}m",
                                       lambda path: build_stream_images(path, stream_size))
        benches: list[Bench] = [BackupBench(name, cases[name], image_dir)
                                for name in ("read", "write", "sparse", "chain")]
        benches += [
            CommitBench("commit", "5 commit", commit_size, image_dir, commit_images,
                        "top.qcow2"),
            StreamBench("stream", "6 stream", stream_size, image_dir, stream_images,
                        "l3.qcow2"),
            DenseBench("dense", cases["dense"], image_dir),
        ]
        benches = [bench for bench in benches if bench.name in selected]
        os.sync()
        print(f"images in {image_dir} ({time.monotonic() - began:.1f} s to prepare); "
              f"warm runs, median of {options.repeat} (cases 1 to 4) and of "
              f"{options.job_repeat} (cases 5 to 7)")
        for kind in kinds:
            start(kind)
        results: dict[tuple[str, str], float] = {}
        totals: dict[tuple[str, str], float] = {}
        for bench in benches:
            # One untimed pass through the sources so that every run reads them warm.
            subprocess.run(["cat", *map(str, bench.warm())], stdout=subprocess.DEVNULL,
                           check=True)
            print(bench.describe())
            repeat: int = getattr(options, bench.repeat_option)
            runs: dict[str, list[Outcome]] = {kind: [] for kind in kinds}
            for attempt in range(repeat):
                for kind in kinds:  # alternate the daemons, run by run
                    try:
                        outcome = bench.run(clients[kind], kind, attempt)
                        runs[kind].append(outcome)
                        allocated = outcome.written.stat().st_blocks * 512
                        total = ("" if outcome.total is None else
                                 f" (to ready; {outcome.total:.3f} s to completed)")
                        used = ("target" if isinstance(bench, BackupBench)
                                else outcome.written.name)
                        print(f"    run {attempt + 1} {kind:5} {outcome.seconds:7.3f} s{total}"
                              f"   {used} uses {allocated / MiB:7.1f} MiB")
                        failures += [f"{bench.label}, run {attempt + 1}, {failure}"
                                     for failure in bench.verify(kind, attempt)]
                    except (EOFError, ConnectionError, TimeoutError) as error:
                        print(f"    run {attempt + 1} {kind:5} FAILED: {error!r}")
                        failures.append(f"{bench.label}, run {attempt + 1}, {kind}: "
                                        f"{error!r}; daemon restarted")
                        restart(kind)
                    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
                        print(f"    run {attempt + 1} {kind:5} FAILED: {error}")
                        failures.append(f"{bench.label}, run {attempt + 1}, {kind}: {error}")
                    finally:
                        bench.discard(kind, attempt)
            for kind in kinds:
                if runs[kind]:
                    seconds = statistics.median(outcome.seconds for outcome in runs[kind])
                    results[(bench.name, kind)] = seconds
                    rate = bench.size / MiB / seconds
                    extra = ""
                    if runs[kind][0].total is not None:
                        total = statistics.median(outcome.total or 0 for outcome in runs[kind])
                        totals[(bench.name, kind)] = total
                        extra = f", to ready; to completed {total:.3f} s (median)"
                    print(f"{bench.label:9} {kind:5} {seconds:7.3f} s (median of "
                          f"{len(runs[kind])})   {rate:7.1f} MiB/s of image{extra}")
            if bench.name == "write":
                seconds = time_cp(random_raw, image_dir, options.repeat)
                results[(bench.name, "cp")] = seconds
                print(f"{bench.label:9} {'cp':5} {seconds:7.3f} s (median of {options.repeat})"
                      f"   {bench.size / MiB / seconds:7.1f} MiB/s  cp --sparse=always of "
                      f"{random_raw.name}")
            if (bench.name, "qjobd") in results and (bench.name, "qsd") in results:
                ratio = results[(bench.name, "qjobd")] / results[(bench.name, "qsd")]
                extra = ""
                if (bench.name, "qjobd") in totals and (bench.name, "qsd") in totals:
                    extra = (", to ready; to completed "
                             f"{totals[(bench.name, 'qjobd')] / totals[(bench.name, 'qsd')]:.2f}x")
                print(f"{bench.label:9} ratio qjobd/qsd: {ratio:.2f}x "
                      f"(target <= {bench.target_ratio}x){extra}")
        print()
        print("targets:")
        for bench in benches:
            name = bench.name
            if (name, "qjobd") not in results or (name, "qsd") not in results:
                print(f"  {bench.label:9} n/a (no qjobd or no QSD result)")
                continue
            ratio = results[(name, "qjobd")] / results[(name, "qsd")]
            verdict = "PASS" if ratio <= bench.target_ratio else "FAIL"
            extra = ""
            if (name, "cp") in results:
                cp = results[(name, "cp")]
                extra = (f"; vs cp: qjobd {results[(name, 'qjobd')] / cp:.2f}x, "
                         f"qsd {results[(name, 'qsd')] / cp:.2f}x")
            if (name, "qjobd") in totals and (name, "qsd") in totals:
                extra = (", to ready; to completed "
                         f"{totals[(name, 'qjobd')] / totals[(name, 'qsd')]:.2f}x")
            print(f"  {verdict} {bench.label:9} qjobd/qsd {ratio:.2f}x "
                  f"(target <= {bench.target_ratio}x){extra}")
        verdict = "PASS" if not failures else f"FAIL ({len(failures)})"
        print(f"  {verdict} every qcow2 written clean and every target identical to its source "
              "(to the top's former content for cases 5 and 6; l3 without backing file)")
        for failure in failures:
            print(f"    {failure}")
        print(f"total {time.monotonic() - began:.1f} s")
    finally:
        for client in clients.values():
            client.close()
        stop_daemons(processes.values())
        shutil.rmtree(workdir, ignore_errors=True)
        if remove_images:
            shutil.rmtree(image_dir, ignore_errors=True)
        else:
            for leftover in image_dir.glob("*.partial"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Kill qjobd with SIGKILL at random moments of qcow2 jobs, many times over.

The test suite kills the daemon some dozens of times; this script does it as often
as asked, with larger images.  Each round builds a fresh backing chain with
qemu-img and qemu-io, records what the top image reads (``qemu-img convert``),
starts qjobd, starts one job chosen at random - intermediate commit, active commit,
stream, drive-mirror to a new qcow2, snapshot-save on two images - lets it run for
a random time (sometimes to the end) and kills the daemon.  Then every image must
pass ``qemu-img check`` with leaked clusters at most, and the top image (the mirror
source) must read exactly as before: none of these jobs changes what the guest sees.

    python contrib/crash-qcow2.py [--rounds N] [--seed S] [--mib N] [--dir DIR]

Prints one line per round and a summary; exits 1 if any round found damage.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
from benchlib import Client, start_daemon

JOBS = ("commit", "active-commit", "stream", "mirror", "snapshot-save")


def tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True)


def build_chain(directory: Path, mib: int, rng: random.Random) -> list[Path]:
    """base <- mid <- top, each layer with data of its own, zero writes and holes."""
    size = f"{mib}M"
    images = []
    for level, name in enumerate(("base", "mid", "top")):
        image = directory / f"{name}.qcow2"
        argv = ["qemu-img", "create", "-q", "-f", "qcow2",
                "-o", f"cluster_size={rng.choice([4096, 65536])}"]
        if images:
            argv += ["-b", images[-1].name, "-F", "qcow2"]
        tool(*argv, str(image), size)
        commands = []
        for _ in range(6):
            offset = rng.randrange(0, mib * 1024 * 1024 - 1)
            length = min(rng.randrange(1, 4 << 20), mib * 1024 * 1024 - offset)
            if rng.random() < 0.2:
                commands += ["-c", f"write -z {offset} {length}"]
            else:
                commands += ["-c", f"write -P {level * 40 + rng.randrange(1, 40)} "
                                   f"{offset} {length}"]
        tool("qemu-io", "-f", "qcow2", *commands, str(image))
        images.append(image)
    return images


def guest_view(image: Path, out: Path) -> bytes:
    tool("qemu-img", "convert", "-U", "-O", "raw", str(image), str(out))
    return out.read_bytes()


def start_job(client: Client, kind: str, images: list[Path], directory: Path) -> None:
    base, mid, top = images
    client.command("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                    "file": {"driver": "file", "filename": str(top)}})
    if kind == "commit":
        client.command("block-commit", {"job-id": "j", "device": "top", "top": str(mid)})
    elif kind == "active-commit":
        client.command("block-commit", {"job-id": "j", "device": "top"})
    elif kind == "stream":
        client.command("block-stream", {"job-id": "j", "device": "top"})
    elif kind == "mirror":
        client.command("drive-mirror", {"job-id": "j", "device": "top", "sync": "full",
                                        "format": "qcow2",
                                        "target": str(directory / "copy.qcow2")})
    else:
        client.command("blockdev-add", {"driver": "qcow2", "node-name": "other",
                                        "file": {"driver": "file",
                                                 "filename": str(base)},
                                        "backing": None})
        for step in range(50):
            client.command("snapshot-save", {"job-id": f"s{step}", "tag": f"t{step}",
                                             "vmstate": "top",
                                             "devices": ["top", "other"]})


def one_round(number: int, rng: random.Random, mib: int, directory: Path) -> list[str]:
    images = build_chain(directory, mib, rng)
    before = guest_view(images[-1], directory / "before.raw")
    kind = rng.choice(JOBS)
    process, socket = start_daemon("qjobd", directory)
    try:
        client = Client(socket)
        start_job(client, kind, images, directory)
        time.sleep(rng.uniform(0, 1.5))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    problems = []
    written = [*images, directory / "copy.qcow2"]
    for image in written:
        if image.exists():
            status = tool("qemu-img", "check", str(image)).returncode
            if status not in (0, 3):
                problems.append(f"{image.name}: qemu-img check exit status {status}")
    if guest_view(images[-1], directory / "after.raw") != before:
        problems.append("the top image no longer reads as before")
    verdict = "ok" if not problems else "; ".join(problems)
    print(f"round {number:4}: {kind:14} {verdict}", flush=True)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--mib", type=int, default=64, help="virtual size of each image")
    parser.add_argument("--dir", type=Path, default=None)
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    parent = Path(tempfile.mkdtemp(prefix="qjobd-crash-", dir=options.dir))
    damaged = 0
    try:
        for number in range(options.rounds):
            directory = parent / f"r{number}"
            directory.mkdir()
            if one_round(number, rng, options.mib, directory):
                damaged += 1
            else:
                shutil.rmtree(directory)
    finally:
        if not damaged:
            shutil.rmtree(parent, ignore_errors=True)
    print(f"{options.rounds} kills, {damaged} with damage"
          + (f" (kept in {parent})" if damaged else ""))
    return 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())

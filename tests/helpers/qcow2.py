"""qcow2 images for tests, made and judged by QEMU's own tools.

qemu-img and qemu-io are the oracles: images are made with them, their content is
read back with ``qemu-img convert`` and their health with ``qemu-img check``, so a
test never trusts qjobd's reading of its own writing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from helpers.images import need_qemu_img
from helpers.nodes import file_opts


def run(*argv: str) -> str:
    """Run a QEMU tool; its output, or an assertion error with what it said."""
    need_qemu_img()
    done = subprocess.run(list(argv), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(argv)}: {(done.stdout + done.stderr).strip()}"
    return done.stdout


def make_qcow2(path: Path, size: int | str, *, backing: Path | None = None,
               backing_fmt: str = "qcow2", **options: Any) -> Path:
    """``qemu-img create -f qcow2``; ``options`` become ``-o key=value`` (``_`` kept)."""
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        argv += ["-b", str(backing), "-F", backing_fmt]
    if options:
        argv += ["-o", ",".join(f"{k}={v}" for k, v in options.items())]
    run(*argv, str(path), str(size))
    return path


def qemu_io(path: Path, *commands: str, fmt: str = "qcow2") -> None:
    """Run qemu-io commands (``write -P 1 0 64k``...) on an image."""
    argv = ["qemu-io", "-f", fmt]
    for command in commands:
        argv += ["-c", command]
    out = run(*argv, str(path))
    assert "error" not in out.lower(), out
    assert "failed" not in out.lower(), out


def raw_content(path: Path, out: Path, fmt: str = "qcow2") -> bytes:
    """The guest-visible bytes of an image (its whole backing chain), via qemu-img."""
    run("qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(out))
    return out.read_bytes()


def info(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        run("qemu-img", "info", "--output=json", "-U", str(path)))
    return result


def check(path: Path) -> dict[str, Any]:
    """``qemu-img check``: asserts no corruption and no leaks; returns its report."""
    need_qemu_img()
    done = subprocess.run(["qemu-img", "check", "--output=json", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"qemu-img check {path}: {done.stdout}{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def qcow2_opts(name: str | None, path: Path | str, **extra: Any) -> dict[str, Any]:
    """A ``qcow2`` node over an anonymous ``file`` node on ``path``."""
    opts: dict[str, Any] = {"driver": "qcow2", "file": file_opts(path), **extra}
    if name is not None:
        opts["node-name"] = name
    return opts


def poke(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes of an image file in place (to break it on purpose)."""
    with open(path, "r+b") as image:
        image.seek(offset)
        image.write(data)


def make_chain(directory: Path, depth: int, size: int = 8 << 20,
               cluster_size: int = 64 << 10, *, absolute: bool = False) -> list[Path]:
    """l0 <- l1 <- ... <- l<depth>: l0 holds data in its first half, each layer writes
    a stripe of its own and zeroes part of it, the rest stays holes.  Backing names
    are relative (the file names) unless ``absolute``."""
    images = [make_qcow2(directory / "l0.qcow2", size, cluster_size=cluster_size)]
    qemu_io(images[0], f"write -P 16 0 {size // 2}")
    for level in range(1, depth + 1):
        layer = make_qcow2(directory / f"l{level}.qcow2", size, cluster_size=cluster_size,
                           backing=images[-1] if absolute else Path(images[-1].name))
        stripe = level * (size // (depth + 2))
        qemu_io(layer, f"write -P {level} {stripe} 200k",
                f"write -z {stripe + (256 << 10)} 64k")
        images.append(layer)
    return images


def check_status(image: Path) -> int:
    """qemu-img check's exit status: 0 clean, 2 corrupt, 3 leaked clusters only."""
    need_qemu_img()
    return subprocess.run(["qemu-img", "check", str(image)], capture_output=True).returncode


def assert_not_corrupt(*images: Path) -> None:
    """After a crash: leaked clusters are allowed, corruption never."""
    for image in images:
        assert check_status(image) in (0, 3), image


def snapshot_listing(image: Path) -> list[tuple[str, str]]:
    """(id, name) of each internal snapshot, as ``qemu-img snapshot -l`` lists them."""
    out = run("qemu-img", "snapshot", "-l", "-U", str(image))
    return [(fields[0], fields[1]) for fields in
            (line.split() for line in out.splitlines()[2:]) if fields]


def assert_same_snapshots(ours: Path, theirs: Path, scratch: Path) -> None:
    """``ours`` passes qemu-img check without a leak, and reads as ``theirs`` does in
    the active layer and in every snapshot, which both list alike."""
    report = check(ours)
    assert report.get("leaks", 0) == 0, report
    run("qemu-img", "compare", str(ours), str(theirs))
    listing = snapshot_listing(ours)
    assert listing == snapshot_listing(theirs)
    for _, name in listing:
        views = []
        for side, image in (("ours", ours), ("theirs", theirs)):
            view = scratch / f"{side}-{image.stem}-{name}.raw"
            run("qemu-img", "convert", "-l", f"snapshot.name={name}", "-O", "raw",
                str(image), str(view))
            views.append(view)
        run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(views[0]), str(views[1]))

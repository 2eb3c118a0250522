"""Helpers shared by the block-layer tests (plain module, imported by name)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

MiB = 1 << 20


def make_image(path: Path, size: int, extents: Sequence[tuple[int, int]] = (),
               seed: int = 0) -> Path:
    """A sparse raw image of ``size`` bytes with random data in ``extents``."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        out.truncate(size)
        for offset, length in extents:
            out.seek(offset)
            out.write(rng.randbytes(length))
    return path


def allocated(path: Path) -> int:
    """Bytes the file really uses on disk."""
    return os.stat(path).st_blocks * 512


def qemu_img_available() -> bool:
    return shutil.which("qemu-img") is not None


def qemu_img_compare(a: Path, b: Path) -> subprocess.CompletedProcess[str]:
    """``qemu-img compare`` of contents (not strict: a fresh image's allocated first
    block must not count as a difference), plus an equal-size check."""
    if not qemu_img_available():
        pytest.skip("qemu-img is not installed")
    assert a.stat().st_size == b.stat().st_size
    return subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw",
                           str(a), str(b)], capture_output=True, text=True)


def file_opts(path: Path, **extra: object) -> dict[str, object]:
    return {"driver": "file", "filename": str(path), **extra}


def raw_opts(name: str, path: Path, **extra: object) -> dict[str, object]:
    return {"driver": "raw", "node-name": name, "file": file_opts(path), **extra}

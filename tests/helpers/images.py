"""Raw image files for tests: making them, measuring them, comparing them."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pytest

MiB = 1 << 20

#: Random data is written in pieces of this size (a multiple of 4 bytes, so the
#: pieces are the very bytes one ``randbytes`` call for the whole extent gives).
_PIECE = 4 * MiB


def _write_random(out: BinaryIO, rng: random.Random, offset: int, length: int) -> None:
    out.seek(offset)
    for start in range(0, length, _PIECE):
        out.write(rng.randbytes(min(_PIECE, length - start)))


def make_image(path: Path, size: int, extents: Iterable[tuple[int, int]] = (), *,
               data: bool = False, holes: bool = False, fill: int | None = None,
               seed: int = 0) -> Path:
    """A raw image of ``size`` bytes, sparse wherever nothing is written; returns ``path``.

    At most one way of writing it:

    * nothing: all holes;
    * ``extents``: random bytes in each (offset, length), in order;
    * ``data=True``: random bytes everywhere;
    * ``holes=True``: random bytes in each 1 MiB, except about 30% of them (random)
      left as holes;
    * ``fill``: every byte ``fill``.

    Random bytes come from ``random.Random(seed)``: the same arguments give the same
    bytes, so two daemons compared side by side get equal images.
    """
    extents = list(extents)
    ways = sum([bool(extents), data, holes, fill is not None])
    if ways > 1:
        raise ValueError("make_image: give at most one of extents, data, holes, fill")
    rng = random.Random(seed)
    with open(path, "wb") as out:
        out.truncate(size)
        if fill is not None:
            piece = bytes([fill]) * min(_PIECE, size)
            for offset in range(0, size, _PIECE):
                out.write(piece[:size - offset])
        elif holes:
            for offset in range(0, size, MiB):
                if rng.random() < 0.3:
                    continue
                _write_random(out, rng, offset, min(MiB, size - offset))
        else:
            for offset, length in [(0, size)] if data else extents:
                _write_random(out, rng, offset, length)
    return path


def allocated(path: Path) -> int:
    """Bytes the file really uses on disk (QEMU's actual-size)."""
    return os.stat(path).st_blocks * 512


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def qemu_img_available() -> bool:
    return shutil.which("qemu-img") is not None


def need_qemu_img() -> None:
    """Skip the calling test when qemu-img is not installed."""
    if not qemu_img_available():
        pytest.skip("qemu-img is not installed")


def assert_same_content(a: Path, b: Path) -> None:
    """Assert that raw images ``a`` and ``b`` have the same size and contents.

    ``qemu-img compare`` is the oracle, not strict: where data is allocated does not
    count (a fresh image's allocated first block is no difference).  Skips the test
    when qemu-img is not installed.
    """
    need_qemu_img()
    size_a, size_b = a.stat().st_size, b.stat().st_size
    assert size_a == size_b, f"sizes differ: {a} has {size_a} bytes, {b} {size_b}"
    done = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(a), str(b)],
                          capture_output=True, text=True)
    assert done.returncode == 0, (
        f"qemu-img compare {a} {b} exited {done.returncode}: "
        f"{(done.stdout + done.stderr).strip()}")

"""blockdev-create for the file driver.

Job error texts recorded from qemu-storage-daemon 7.2 (query-jobs "error").
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.images import MiB, allocated, make_image

from qjobd.block import create_file
from qjobd.errors import QMPError


@pytest.mark.parametrize(("mode", "blocks"), [("off", 4096), ("falloc", MiB), ("full", MiB)])
def test_preallocation(tmp_path: Path, mode: str, blocks: int) -> None:
    path = tmp_path / f"{mode}.img"
    create_file(str(path), MiB, preallocation=mode)
    assert path.stat().st_size == MiB
    # QSD 7.2: off -> 8 sectors (first block written), falloc/full -> all of it.
    assert allocated(path) == blocks
    assert path.read_bytes() == bytes(MiB)
    if shutil.which("qemu-img"):
        info = json.loads(subprocess.run(
            ["qemu-img", "info", "--output=json", "-f", "raw", str(path)],
            check=True, capture_output=True, text=True).stdout)
        assert info["virtual-size"] == MiB


def test_small_and_empty(tmp_path: Path) -> None:
    small = tmp_path / "small.img"
    create_file(str(small), 1000, nocow=True)
    assert small.stat().st_size == 1000
    empty = tmp_path / "empty.img"
    create_file(str(empty), 0, extent_size_hint=65536)
    assert empty.stat().st_size == 0
    assert allocated(empty) == 0


def test_existing_file_is_truncated(tmp_path: Path) -> None:
    path = make_image(tmp_path / "old.img", 4 * MiB, data=True)
    create_file(str(path), 1000)
    assert path.read_bytes() == bytes(1000)


def test_errors(tmp_path: Path) -> None:
    nodir = tmp_path / "nodir" / "y.img"
    with pytest.raises(QMPError) as info:
        create_file(str(nodir), MiB)
    assert info.value.desc == f"Could not create '{nodir}': No such file or directory"
    with pytest.raises(QMPError) as info:
        create_file(str(tmp_path), 1000)
    assert info.value.desc == f"Could not create '{tmp_path}': Is a directory"
    meta = tmp_path / "meta.img"
    with pytest.raises(QMPError) as info:
        create_file(str(meta), MiB, preallocation="metadata")
    assert info.value.desc == "Unsupported preallocation mode: metadata"
    assert meta.stat().st_size == 0  # QSD leaves the emptied file behind as well
    with pytest.raises(QMPError, match="Extent size hint is too large"):
        create_file(str(meta), MiB, extent_size_hint=1 << 32)

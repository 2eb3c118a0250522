"""Backups and mirrors that read a qcow2 backing chain, through a real qjobd.

The target must hold exactly what the guest sees through the chain: the oracle is
``qemu-img convert`` of the top image.  Unallocated and zero clusters must stay
holes in the (raw) target.
"""

from __future__ import annotations

from pathlib import Path

from helpers.client import Client
from helpers.images import MiB, allocated, assert_same_content, make_image
from helpers.qcow2 import make_qcow2, qcow2_opts, qemu_io, raw_content


def chain(tmp_path: Path) -> Path:
    base = make_qcow2(tmp_path / "base.qcow2", 32 * MiB)
    qemu_io(base, "write -P 1 0 8M", "write -P 2 20M 1M")
    top = make_qcow2(tmp_path / "top.qcow2", 32 * MiB, backing=base)
    qemu_io(top, "write -P 3 4M 2M", "write -z 20M 512k", "write -c -P 4 30M 64k")
    raw_content(top, tmp_path / "expected.raw")
    return top


def test_backup_and_mirror_read_the_whole_chain(qjobd_socket: Path, tmp_path: Path) -> None:
    top = chain(tmp_path)
    expected = tmp_path / "expected.raw"
    backup_target = make_image(tmp_path / "backup.raw", 32 * MiB)
    mirror_target = make_image(tmp_path / "mirror.raw", 32 * MiB)
    with Client(qjobd_socket) as c:
        c.ok("blockdev-add", qcow2_opts("src", top, **{"read-only": True}))
        c.add_raw("b", backup_target)
        c.add_raw("m", mirror_target)
        c.ok("blockdev-backup", {"job-id": "bk", "device": "src", "target": "b",
                                 "sync": "full"})
        c.wait_status("bk", "null")
        c.ok("blockdev-mirror", {"job-id": "mi", "device": "src", "target": "m",
                                 "sync": "full"})
        c.wait_event("BLOCK_JOB_READY", "mi")
        c.ok("job-complete", {"id": "mi"})
        c.wait_status("mi", "null")
        # A new raw file from drive-backup, too.
        c.ok("drive-backup", {"job-id": "db", "device": "src", "sync": "full",
                              "target": str(tmp_path / "new.raw"), "format": "raw"})
        c.wait_status("db", "null")
    for target in (backup_target, mirror_target, tmp_path / "new.raw"):
        assert_same_content(expected, target)
        # 8 MiB + 2 MiB overlap + 512 KiB + 64 KiB of data at most, holes elsewhere.
        assert allocated(target) <= 10 * MiB

"""The internal snapshot table: parsing with QEMU's limits, and serialising.

Each entry names an L1 table (a frozen copy of the image's mapping at the time of
the snapshot) plus the VM state that QEMU saved with it; qjobd has no VM, so the
state it records is always empty, but it keeps whatever another writer stored.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Final

import attrs

from qjobd.block.qcow2.header import ReadAt
from qjobd.errors import QMPError

_ENTRY: Final = struct.Struct(">QIHHIIQII")
_EXTRA: Final = struct.Struct(">QQQ")
MAX_EXTRA_DATA: Final = 1024
MAX_TABLE_BYTES: Final = 1024 * 65536
NO_ICOUNT: Final = (1 << 64) - 1


@attrs.define
class Snapshot:
    """One snapshot table entry."""

    l1_table_offset: int
    l1_size: int
    id: str
    name: str
    date_sec: int
    date_nsec: int
    vm_clock_nsec: int
    vm_state_size: int
    disk_size: int
    icount: int = NO_ICOUNT
    #: Extra data past the three fields qjobd knows, kept verbatim.
    unknown_extra: bytes = b""

    def info(self) -> dict[str, Any]:
        """SnapshotInfo, as query-named-block-nodes lists it."""
        info: dict[str, Any] = {
            "id": self.id, "name": self.name, "vm-state-size": self.vm_state_size,
            "date-sec": self.date_sec, "date-nsec": self.date_nsec,
            "vm-clock-sec": self.vm_clock_nsec // 1_000_000_000,
            "vm-clock-nsec": self.vm_clock_nsec % 1_000_000_000,
        }
        if self.icount != NO_ICOUNT:
            info["icount"] = self.icount
        return info

    def encode(self) -> bytes:
        """The entry as qjobd writes it (always the 24 known bytes of extra data)."""
        ident = self.id.encode()
        name = self.name.encode()
        extra = _EXTRA.pack(self.vm_state_size, self.disk_size, self.icount)
        extra += self.unknown_extra
        vm_state_small = self.vm_state_size if self.vm_state_size < 1 << 32 else 0
        head = _ENTRY.pack(self.l1_table_offset, self.l1_size, len(ident), len(name),
                           self.date_sec, self.date_nsec, self.vm_clock_nsec,
                           vm_state_small, len(extra))
        entry = head + extra + ident + name
        return entry + bytes(-len(entry) % 8)


#: QCOW_MAX_SNAPSHOTS: the most entries QEMU lets a table hold.
MAX_SNAPSHOTS: Final = 65536


def new(snapshots: list[Snapshot], name: str, *, l1_table_offset: int, l1_size: int,
        disk_size: int) -> Snapshot:
    """A disk-only entry as QEMU's snapshot commands fill it in.

    The id is one more than the largest numeric id (find_new_snapshot_id); the
    dates are now, to the microsecond; qemu-storage-daemon's virtual clock reads
    the host's real time to the microsecond, so the VM clock field does too.
    """
    highest = max((_leading_number(s.id) for s in snapshots), default=0)
    now_us = time.time_ns() // 1000
    return Snapshot(l1_table_offset=l1_table_offset, l1_size=l1_size,
                    id=str(highest + 1), name=name, date_sec=now_us // 1_000_000,
                    date_nsec=now_us % 1_000_000 * 1000, vm_clock_nsec=now_us * 1000,
                    vm_state_size=0, disk_size=disk_size)


def _leading_number(text: str) -> int:
    """strtoul's reading of an id: its leading digits, 0 without any."""
    digits = len(text) - len(text.lstrip("0123456789"))
    return int(text[:digits]) if digits else 0


def parse(read_at: ReadAt, offset: int, count: int,
          image_size: int) -> tuple[list[Snapshot], int]:
    """qcow2_read_snapshots without repair: the same limits and messages.

    Returns the entries and the table's length in bytes (what its clusters hold).
    """
    snapshots = []
    start = offset
    for index in range(count):
        offset = (offset + 7) & ~7
        (l1_offset, l1_size, id_size, name_size, date_sec, date_nsec, vm_clock,
         vm_state, extra_size) = _ENTRY.unpack(read_at(offset, _ENTRY.size))
        offset += _ENTRY.size
        if extra_size > MAX_EXTRA_DATA:
            raise QMPError(f"Too much extra metadata in snapshot table entry {index}")
        known = min(_EXTRA.size, extra_size)
        extra = read_at(offset, known) + bytes(_EXTRA.size - known)
        offset += known
        vm_large, disk_size, icount = _EXTRA.unpack(extra)
        if extra_size < 8:
            vm_large = vm_state
        if extra_size < 16:
            disk_size = image_size
        if extra_size < 24:
            icount = NO_ICOUNT
        unknown = b""
        if extra_size > _EXTRA.size:
            unknown = read_at(offset, extra_size - _EXTRA.size)
            offset += len(unknown)
        ident = read_at(offset, id_size)
        offset += id_size
        name = read_at(offset, name_size)
        offset += name_size
        if offset - start > MAX_TABLE_BYTES:
            raise QMPError("Snapshot table is too big")
        snapshots.append(Snapshot(
            l1_offset, l1_size, ident.decode("utf-8", errors="surrogateescape"),
            name.decode("utf-8", errors="surrogateescape"), date_sec, date_nsec,
            vm_clock, vm_large, disk_size, icount, unknown))
    return snapshots, offset - start

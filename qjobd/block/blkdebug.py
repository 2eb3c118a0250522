"""The ``blkdebug`` filter: fails chosen requests so error policies can be tested.

The rule engine follows QEMU 7.2 closely because clients write their tests against
its quirks:

* A rule is armed by an *event*, not by the request it fails.  Events are raised on
  this node by whoever sits above it: the raw format driver raises ``read_aio`` /
  ``write_aio`` before each read/write it passes down, the generic write path raises
  ``pwritev``/``pwritev_zero``/``pwritev_done`` on the node being written, and flush
  raises ``flush_to_os``/``flush_to_disk`` on a node's primary child.  So a
  ``read_aio`` rule fires for ``raw -> blkdebug -> file`` but never when a job reads
  the blkdebug node directly - exactly like QEMU.
* When an event has inject-error rules for the current state, those rules replace the
  active set; the active set then fails every request whose type is in the rule's
  iotype mask (default: read, write, write-zeroes, discard, flush) and whose range
  covers ``sector`` (-1: any request).  ``once`` rules disarm after firing.
* The initial state is 1; ``state: 0`` matches any state; set-state rules move it.

Errors surface as ``OSError(errno)`` from the request, as the job engine expects.
"""

from __future__ import annotations

import errno as errno_mod
import os
import threading
from typing import Any, ClassVar, Final

import attrs

from qjobd.block.node import (
    BlockNode,
    BlockStatus,
    ChildOpener,
    CommonOptions,
    Edge,
    Perm,
)
from qjobd.errors import QMPError

#: BlkdebugEvent from qapi/block-core.json (7.2), all accepted in rules.
EVENTS: Final = (
    "l1_update", "l1_grow_alloc_table", "l1_grow_write_table", "l1_grow_activate_table",
    "l2_load", "l2_update", "l2_update_compressed", "l2_alloc_cow_read", "l2_alloc_write",
    "read_aio", "read_backing_aio", "read_compressed", "write_aio", "write_compressed",
    "vmstate_load", "vmstate_save", "cow_read", "cow_write", "reftable_load",
    "reftable_grow", "reftable_update", "refblock_load", "refblock_update",
    "refblock_update_part", "refblock_alloc", "refblock_alloc_hookup",
    "refblock_alloc_write", "refblock_alloc_write_blocks", "refblock_alloc_write_table",
    "refblock_alloc_switch_table", "cluster_alloc", "cluster_alloc_bytes", "cluster_free",
    "flush_to_os", "flush_to_disk", "pwritev_rmw_head", "pwritev_rmw_after_head",
    "pwritev_rmw_tail", "pwritev_rmw_after_tail", "pwritev", "pwritev_zero", "pwritev_done",
    "empty_image_prepare", "l1_shrink_write_table", "l1_shrink_free_l2_clusters",
    "cor_write", "cluster_alloc_space", "none",
)  # fmt: skip

#: BlkdebugIOType, in enum order (the bit numbers of the iotype mask).
IOTYPES: Final = ("read", "write", "write-zeroes", "discard", "flush", "block-status")
_DEFAULT_IOTYPES: Final = frozenset(("read", "write", "write-zeroes", "discard", "flush"))

#: Schema member order of the rule structs: the order QEMU's visitor builds them in,
#: which decides how a JSON filename lists their flattened keys.
_INJECT_MEMBERS: Final = ("event", "state", "iotype", "errno", "sector", "once", "immediately")
_SET_STATE_MEMBERS: Final = ("event", "state", "new_state")

_PERM_BY_NAME: Final = {
    "consistent-read": Perm.CONSISTENT_READ,
    "write": Perm.WRITE,
    "write-unchanged": Perm.WRITE_UNCHANGED,
    "resize": Perm.RESIZE,
}
_INT_MAX: Final = (1 << 31) - 1


@attrs.define(eq=False)
class Rule:
    """One inject-error or set-state rule."""

    event: str
    state: int
    inject: bool
    error: int = errno_mod.EIO
    offset: int = -1
    once: bool = False
    iotypes: frozenset[str] = _DEFAULT_IOTYPES
    new_state: int = 0


def _ordered(rule: dict[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    return {key: rule[key] for key in members if key in rule}


def _parse_config(path: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The subset of QEMU's config-file syntax blkdebug files use.

    ``[inject-error]`` / ``[set-state]`` groups of ``key = "value"`` lines.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise QMPError("Could not read blkdebug config file: "
                       f"{os.strerror(exc.errno or errno_mod.EIO)}") from exc
    injects: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("["):
            group = text.strip("[]").split()[0].strip('"')
            current = {}
            if group == "inject-error":
                injects.append(current)
            elif group == "set-state":
                states.append(current)
            else:
                raise QMPError(f"{path}:{number}: group '{group}' is not supported")
            continue
        key, sep, value = text.partition("=")
        if not sep or current is None:
            raise QMPError(f"{path}:{number}: parse error")
        raw = value.strip().strip('"')
        parsed: Any = raw
        if raw in ("on", "off", "true", "false"):
            parsed = raw in ("on", "true")
        else:
            try:
                parsed = int(raw, 0)
            except ValueError:
                parsed = raw
        current[key.strip()] = parsed
    return injects, states


def _make_rule(spec: dict[str, Any], inject: bool) -> Rule:
    event = spec.get("event")
    if event is None:
        raise QMPError("Missing event name for rule")
    if event not in EVENTS:
        raise QMPError(f"invalid parameter value: {event}")
    rule = Rule(event=event, state=int(spec.get("state", 0)), inject=inject)
    if inject:
        rule.error = int(spec.get("errno", errno_mod.EIO))
        rule.once = bool(spec.get("once", False))
        sector = int(spec.get("sector", -1))
        rule.offset = -1 if sector == -1 else sector * 512
        iotype = spec.get("iotype")
        if iotype is not None:
            if iotype not in IOTYPES:
                raise QMPError(f"invalid parameter value: {iotype}")
            rule.iotypes = frozenset((iotype,))
    else:
        rule.new_state = int(spec.get("new_state", 0))
    return rule


class BlkdebugNode(BlockNode):
    """See the module docstring."""

    format_name = "blkdebug"
    is_protocol: ClassVar[bool] = True
    is_filter: ClassVar[bool] = True
    strong_options: ClassVar[tuple[str, ...]] = (
        "config", "inject-error.", "set-state.", "align", "max-transfer",
        "opt-write-zero", "max-write-zero", "opt-discard", "max-discard",
    )

    def __init__(self, options: dict[str, Any], common: CommonOptions) -> None:
        normalized = dict(options)
        if "inject-error" in options:
            normalized["inject-error"] = [_ordered(r, _INJECT_MEMBERS)
                                          for r in options["inject-error"]]
        if "set-state" in options:
            normalized["set-state"] = [_ordered(r, _SET_STATE_MEMBERS)
                                       for r in options["set-state"]]
        super().__init__(normalized, common)
        self._lock = threading.Lock()
        #: Rules per event, newest first (QLIST_INSERT_HEAD).
        self._rules: dict[str, list[Rule]] = {}
        self._active: list[Rule] = []
        self.state = 1
        self.align = 0
        self.max_transfer = 0
        self._take = Perm(0)
        self._unshare = Perm(0)

    # Section: open

    def open(self, open_child: ChildOpener) -> None:
        """blkdebug_open: rules, permission tweaks, the image, then the limits."""
        injects: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        config = self.options.get("config")
        if config is not None:
            injects, states = _parse_config(config)
        injects = injects + list(self.options.get("inject-error", []))
        states = states + list(self.options.get("set-state", []))
        for spec in injects:
            self._add(_make_rule(spec, True))
        for spec in states:
            self._add(_make_rule(spec, False))
        for name in self.options.get("take-child-perms", []):
            self._take |= _PERM_BY_NAME[name]
        for name in self.options.get("unshare-child-perms", []):
            self._unshare |= _PERM_BY_NAME[name]
        image = open_child("image")
        self.align = int(self.options.get("align", 0))
        if self.align and (self.align >= _INT_MAX or self.align & (self.align - 1)):
            raise QMPError(f"Cannot meet constraints with align {self.align}")
        align = max(self.align, image_alignment(image))
        self.max_transfer = int(self.options.get("max-transfer", 0))
        self._check_limit("max-transfer", self.max_transfer, align)
        opt_write_zero = int(self.options.get("opt-write-zero", 0))
        self._check_limit("opt-write-zero", opt_write_zero, align)
        self._check_limit("max-write-zero", int(self.options.get("max-write-zero", 0)),
                          max(opt_write_zero, align))
        opt_discard = int(self.options.get("opt-discard", 0))
        self._check_limit("opt-discard", opt_discard, align)
        self._check_limit("max-discard", int(self.options.get("max-discard", 0)),
                          max(opt_discard, align))
        self.debug_event("none")

    @staticmethod
    def _check_limit(name: str, value: int, align: int) -> None:
        # QEMU reads these as unsigned sizes, so a negative one prints as 2^64 - n.
        if value and (value % (1 << 64) >= _INT_MAX or value % align):
            raise QMPError(f"Cannot meet constraints with {name} {value % (1 << 64)}")

    def _add(self, rule: Rule) -> None:
        self._rules.setdefault(rule.event, []).insert(0, rule)

    @property
    def image(self) -> BlockNode:
        return self.child_edges[0].node

    def child_perm(self, edge: Edge, perm: Perm, shared: Perm) -> tuple[Perm, Perm]:
        nperm, nshared = super().child_perm(edge, perm, shared)
        return nperm | self._take, nshared & ~self._unshare

    # Section: rules

    def debug_event(self, event: str) -> None:
        with self._lock:
            new_state = self.state
            injected = 0
            for rule in list(self._rules.get(event, ())):
                if rule.state and rule.state != self.state:
                    continue
                if rule.inject:
                    injected += 1
                    if injected == 1:
                        self._active = []
                    self._active.insert(0, rule)
                else:
                    new_state = rule.new_state
            self.state = new_state

    def _rule_check(self, offset: int, length: int, iotype: str) -> None:
        with self._lock:
            for rule in self._active:
                if ((rule.offset == -1 or (length and offset <= rule.offset < offset + length))
                        and iotype in rule.iotypes):
                    break
            else:
                return
            if not rule.error:
                return
            if rule.once:
                self._active.remove(rule)
                rules = self._rules.get(rule.event, [])
                if rule in rules:
                    rules.remove(rule)
        code = abs(rule.error)
        raise OSError(code, os.strerror(code))

    # Section: I/O

    def _length(self) -> int:
        return self.image.length()

    def _pieces(self, start: int, end: int) -> list[tuple[int, int]]:
        step = self.max_transfer or (end - start)
        return [(pos, min(step, end - pos)) for pos in range(start, end, step)] or [(start, 0)]

    def _bounds(self, offset: int, length: int) -> tuple[int, int]:
        align = self.align or 1
        start = offset - offset % align
        end = -(-(offset + length) // align) * align
        return start, end

    def _aligned_read(self, start: int, end: int) -> bytearray:
        data = bytearray(end - start)
        view = memoryview(data)
        for pos, size in self._pieces(start, end):
            self._rule_check(pos, size, "read")
            self.image.readinto(pos, view[pos - start:pos - start + size])
        return data

    def _do_preadv(self, offset: int, buffer: memoryview) -> None:
        start, end = self._bounds(offset, len(buffer))
        if (start, end) == (offset, offset + len(buffer)):
            for pos, size in self._pieces(start, end):
                self._rule_check(pos, size, "read")
                self.image.readinto(pos, buffer[pos - start:pos - start + size])
            return
        data = self._aligned_read(start, end)
        buffer[:] = data[offset - start:offset - start + len(buffer)]

    def _do_pwrite(self, offset: int, data: memoryview) -> None:
        start, end = self._bounds(offset, len(data))
        payload: memoryview = data
        if (start, end) != (offset, offset + len(data)):
            align = self.align
            merged = bytearray(end - start)
            if offset != start:
                self.debug_event("pwritev_rmw_head")
                merged[:align] = self._aligned_read(start, start + align)
                self.debug_event("pwritev_rmw_after_head")
            if offset + len(data) != end:
                self.debug_event("pwritev_rmw_tail")
                merged[-align:] = self._aligned_read(end - align, end)
                self.debug_event("pwritev_rmw_after_tail")
            merged[offset - start:offset - start + len(data)] = data
            payload = memoryview(merged)
        for pos, size in self._pieces(start, end):
            self._rule_check(pos, size, "write")
            self.image.pwrite(pos, payload[pos - start:pos - start + size])

    def _do_write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        self._rule_check(offset, length, "write-zeroes")
        self.image.write_zeroes(offset, length, may_unmap=may_unmap)

    def _do_discard(self, offset: int, length: int) -> None:
        self._rule_check(offset, length, "discard")
        self.image.discard(offset, length)

    def _do_block_status(self, offset: int, length: int) -> tuple[BlockStatus, int]:
        self._rule_check(offset, length, "block-status")
        return self.image.block_status(offset, length)

    def _do_flush(self) -> None:
        self._rule_check(0, 0, "flush")

    def exact_filename(self) -> str:
        """"blkdebug:<config>:<image>" when no option beyond config was given."""
        image_name = self.image.exact_filename()
        if not image_name:
            return ""
        if set(self.full_open_options()) - {"config", "image", "driver"}:
            return ""
        return f"blkdebug:{self.options.get('config', '')}:{image_name}"


def image_alignment(node: BlockNode) -> int:
    """The request alignment a child imposes (file with O_DIRECT: 4 KiB, else 1)."""
    if getattr(node, "cache_direct", False) and node.format_name == "file":
        return 4096
    if isinstance(node, BlkdebugNode) and node.align:
        return node.align
    return 1


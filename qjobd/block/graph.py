"""The block graph: blockdev-add/-del, node lookup, queries, permissions, op blockers.

Everything here runs on the event-loop thread (graph changes are not thread-safe and
need not be); only node I/O runs in worker threads.  All QMP-visible failures are
``QMPError`` with qemu-storage-daemon 7.2's text, and ``add`` is all-or-nothing:
a failure closes and forgets every node it created.

Three QEMU mechanisms decide who may use a node, and each keeps QEMU's wording:

* **Permissions** (``acquire``): every user of a node holds an ``Edge`` saying what it
  needs (read, write, ...) and what it lets others do.  Perms flow down through
  filters and raw nodes, so two writers conflict on the file underneath too.  Failure
  reads "Permission conflict on node 'x': permissions 'write' are both required by
  ... and unshared by ...", or "Block node is read-only".
* **Op blockers** (``block_ops``): a running job blocks its nodes; commands that
  would touch them get "Node 'x' is busy: block device is in use by block job:
  backup".  Jobs call ``check_op`` before starting.
* **References**: blockdev-del refuses nodes that anything still uses ("Block device
  x is in use") and implicit children ("Node x is not owned by the monitor").
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Collection, Iterator
from typing import Any, Final

import attrs

from qjobd.block.filter import FilterNode
from qjobd.block.formats import FormatRegistry
from qjobd.block.node import (
    PERM_ALL,
    PERM_NONE,
    BlockNode,
    ChildOpener,
    CommonOptions,
    Edge,
    EdgeKind,
    Perm,
    perm_names,
)
from qjobd.errors import QMPError
from qjobd.ids import id_wellformed

#: bs->node_name is a 32-byte array: 31 characters and the NUL.
NODE_NAME_MAX: Final = 31


def job_blocker_reason(job_type: str) -> str:
    """The reason text a block job puts on the nodes it blocks (blockjob.c)."""
    return f"block device is in use by block job: {job_type}"


@attrs.define(eq=False)
class OpBlocker:
    """A job's claim that stops other commands from using a node."""

    graph: BlockGraph
    node: BlockNode
    reason: str
    exempt: frozenset[str] = frozenset()
    active: bool = True

    def release(self) -> None:
        """Unblock (idempotent)."""
        if self.active:
            self.active = False
            self.graph._blockers[self.node].remove(self)


@attrs.define(eq=False)
class Permission:
    """A held use of a node (QEMU's BdrvChild from a job or backend).

    Release it when the job ends; ``update`` changes what it needs in place (mirror
    drops write sharing on completion, for instance).  Usable as a context manager.
    """

    graph: BlockGraph
    edge: Edge
    active: bool = True

    @property
    def node(self) -> BlockNode:
        return self.edge.node

    def update(self, perm: Perm, shared: Perm) -> None:
        """Change the needed/shared perms; raises QMPError and keeps the old on conflict."""
        self.graph._set_edge_perms(self.edge, perm, shared)

    def release(self) -> None:
        """Drop the use (idempotent)."""
        if self.active:
            self.active = False
            self.graph._detach(self.edge)

    def __enter__(self) -> Permission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


#: Operations a backing file's op blocker lets through (bdrv_backing_attach).
BACKING_EXEMPT_OPS: Final = frozenset({"commit-target", "stream", "backup-source",
                                       "backup-target"})

#: Backing files opened implicitly, one inside another, before qjobd gives up.  QEMU
#: has no limit; here every level costs about five Python frames in each walk down
#: the chain (opening, permissions, reads), and 128 levels stay well inside Python's
#: default recursion limit of 1,000 wherever the walk starts.  Real chains are far
#: shorter; a longer one is refused with a clear error.
MAX_BACKING_DEPTH: Final = 128


@attrs.define
class _AddContext:
    """Nodes created by one blockdev-add, so a failure can undo all of them."""

    created: list[BlockNode] = attrs.field(factory=list)
    edges: list[Edge] = attrs.field(factory=list)
    #: Host files of the images whose implicit backing files are being opened,
    #: outermost first: a backing file among them would make the chain loop.
    backing_files: list[tuple[int, int] | None] = attrs.field(factory=list)


class BlockGraph:
    """All nodes of the daemon; see the module docstring."""

    def __init__(self, formats: FormatRegistry | None = None,
                 rng: random.Random | None = None) -> None:
        #: The drivers nodes can be opened with.
        self.formats = formats or FormatRegistry()
        #: Nodes in creation order (graph_bdrv_states); queries list them newest first.
        self._nodes: list[BlockNode] = []
        self._by_name: dict[str, BlockNode] = {}
        self._blockers: dict[BlockNode, list[OpBlocker]] = {}
        self._id_counter = 0
        self._rng = rng or random.Random()
        #: The op blocker each backing edge puts on its child (bdrv_backing_attach).
        self._backing_blockers: dict[Edge, OpBlocker] = {}

    # Section: names

    def generate_name(self) -> str:
        """util/id.c id_generate(ID_BLOCK): '#block', a counter, two random digits.

        The counter is global and is consumed even when the node then fails to
        open, as in QEMU, so names match QSD's for the same command sequence up to
        the random part.
        """
        name = f"#block{self._id_counter}{self._rng.randrange(100):02d}"
        self._id_counter += 1
        return name

    def _assign_name(self, node: BlockNode, name: str | None) -> None:
        """bdrv_assign_node_name, same checks in the same order."""
        if name is None:
            name = self.generate_name()
            node.generated_name = True
        elif not id_wellformed(name):
            raise QMPError(f"Invalid node-name: '{name}'")
        if name in self._by_name:
            raise QMPError(f"Duplicate nodes with node-name='{name}'")
        if len(name) > NODE_NAME_MAX:
            raise QMPError("Node name too long")
        node.node_name = name
        self._nodes.append(node)
        self._by_name[name] = node
        self._blockers[node] = []

    def _forget(self, node: BlockNode) -> None:
        if self._by_name.get(node.node_name) is node:
            del self._by_name[node.node_name]
        if node in self._nodes:
            self._nodes.remove(node)
        self._blockers.pop(node, None)

    # Section: lookup

    def find(self, name: str) -> BlockNode | None:
        """The node called ``name`` (generated names included), or None."""
        return self._by_name.get(name)

    def lookup(self, name: str, *, node_name_only: bool = False) -> BlockNode:
        """bdrv_lookup_bs(name, name), the usual way commands find a node.

        ``node_name_only`` is bdrv_lookup_bs(NULL, name), whose error names no device.
        """
        return self.lookup_device_or_node(None if node_name_only else name, name)

    def lookup_device_or_node(self, device: str | None, node_name: str | None) -> BlockNode:
        """bdrv_lookup_bs(device, node_name) with its error text.

        QSD has no devices (BlockBackends with names), so ``device`` never finds
        anything and only ``node_name`` is looked up: a command given only a device
        fails, as it does in QSD.
        """
        node = self._by_name.get(node_name) if node_name is not None else None
        if node is None:
            raise QMPError(f"Cannot find device='{device or ''}' nor "
                           f"node-name='{node_name or ''}'")
        return node

    def __iter__(self) -> Iterator[BlockNode]:
        return iter(list(self._nodes))

    def __len__(self) -> int:
        return len(self._nodes)

    @staticmethod
    def is_root_node(node: BlockNode) -> bool:
        """bdrv_is_root_node: only BlockBackends above it (mirror wants that)."""
        return all(edge.kind is EdgeKind.BACKEND for edge in node.parents)

    # Section: blockdev-add

    def add(self, options: dict[str, Any]) -> BlockNode:
        """blockdev-add: open ``options`` (QMP wire form) and its inline children.

        On failure nothing is left behind: created nodes are closed and unnamed, and
        edges to pre-existing nodes are detached.  Generated-name counters stay
        consumed, like QEMU's.
        """
        if options.get("node-name") is None:
            raise QMPError("'node-name' must be specified for the root node")
        node = self._open_tree(options)
        node.monitor_owned = True
        return node

    def open_implicit(self, options: dict[str, Any]) -> BlockNode:
        """Open a node tree for a job (drive-backup's target, say), all-or-nothing.

        Unnamed nodes get generated names and nothing is owned by the monitor, so
        :meth:`release_implicit` (or dropping the last user of the root) closes it all.
        """
        return self._open_tree(options)

    def open_ref(self, ref: Any) -> BlockNode:
        """bdrv_open_blockdev_ref: a node name is looked up, options open a new tree
        (release it with :meth:`release_implicit`)."""
        if isinstance(ref, str):
            return self.lookup(ref)
        return self.open_implicit(ref)

    def release_implicit(self, node: BlockNode) -> None:
        """Close a node from :meth:`open_implicit` once nothing uses it any more."""
        if not node.closed and not node.parents and not node.monitor_owned:
            self._release(node)

    def _open_tree(self, options: dict[str, Any]) -> BlockNode:
        context = _AddContext()
        try:
            return self._open(options, None, context)
        except BaseException:
            self._undo(context)
            raise

    def _undo(self, context: _AddContext) -> None:
        """Detach the edges and close the nodes a failed open made."""
        for edge in reversed(context.edges):
            self._detach(edge)
        for created in reversed(context.created):
            self._forget(created)
            created.close()

    @staticmethod
    def _common(options: dict[str, Any], inherited: CommonOptions | None) -> CommonOptions:
        """The base BlockdevOptions members, with bdrv_inherited_options defaults."""
        parent = inherited or CommonOptions()
        cache = options.get("cache", {})
        return CommonOptions(
            read_only=options.get("read-only", parent.read_only),
            auto_read_only=options.get("auto-read-only", parent.auto_read_only),
            force_share=options.get("force-share", parent.force_share),
            cache_direct=cache.get("direct", parent.cache_direct),
            cache_no_flush=cache.get("no-flush", parent.cache_no_flush),
            # Children default to discard=unmap (the parent still filters requests).
            discard_unmap=options.get("discard", "unmap" if inherited else "ignore")
            in ("unmap", "on"),
            detect_zeroes=options.get("detect-zeroes", "off"),
        )

    def _open(self, options: dict[str, Any], inherited: CommonOptions | None,
              context: _AddContext) -> BlockNode:
        """bdrv_open_inherit + bdrv_open_common for one node (recursively)."""
        cls = self.formats.node_class(options["driver"])
        common = self._common(options, inherited)
        node = cls(options, common)

        early: dict[str, BlockNode] = {}
        for key in cls.early_children:
            if key in options:
                early[key] = self._open_ref(options[key], common, context)

        if common.force_share and not common.read_only:
            raise QMPError("force-share=on can only be used with read-only images")
        if cls.needs_filename and not options.get("filename"):
            raise QMPError(f"The '{cls.format_name}' block driver requires a file name")
        if common.detect_zeroes == "unmap" and not common.discard_unmap:
            raise QMPError("setting detect-zeroes to unmap is not allowed without setting "
                           "discard operation to unmap")

        self._assign_name(node, options.get("node-name"))
        context.created.append(node)
        node.open(self._child_opener(node, common, context, early))
        return node

    def _child_opener(self, node: BlockNode, common: CommonOptions, context: _AddContext,
                      early: dict[str, BlockNode] | None = None) -> ChildOpener:
        """The ChildOpener a driver opens ``node``'s children with; ``early``: the
        children opened before the node was named."""

        def open_child(key: str, ref: Any = None, /, *, backing: bool = False) -> BlockNode:
            child = early.get(key) if early is not None and ref is None else None
            if child is None:
                if ref is None:
                    ref = node.options[key]
                if backing and not isinstance(ref, str):
                    child = self._open_backing(node, ref, common, context)
                else:
                    child = self._open_ref(ref, common, context)
            edge = Edge(node=child, name=key, kind=EdgeKind.NODE,
                        parent_desc=f"node '{node.node_name}'", parent=node)
            self._attach(edge)
            context.edges.append(edge)
            return child

        return open_child

    def open_backing_file(self, node: BlockNode) -> None:
        """bdrv_open_backing_file: give an image opened without its backing file
        (``"backing": null``) the one its header names, all-or-nothing.

        What a drive-mirror target in ``mode: existing`` gets when the job
        completes.  Nothing happens when it has a backing file already or names
        none.  Raises QMPError ("Could not open backing file: ...").
        """
        if node.backing is not None:
            return
        common = CommonOptions(
            read_only=node.read_only, auto_read_only=node.auto_read_only,
            force_share=node.force_share, cache_direct=node.cache_direct,
            cache_no_flush=node.cache_no_flush, discard_unmap=node.discard_unmap,
            detect_zeroes=node.detect_zeroes)
        context = _AddContext()
        try:
            node.open_backing(self._child_opener(node, common, context))
        except BaseException:
            self._undo(context)
            raise
        node.options.pop("backing", None)  # no longer overridden (qdict_del)

    def _open_backing(self, node: BlockNode, ref: dict[str, Any], parent: CommonOptions,
                      context: _AddContext) -> BlockNode:
        """A backing child: read-only by default (bdrv_backing_options), never a loop.

        QEMU opens a backing file that names itself (or an earlier image of the
        chain) again and again; here the chain's host files are compared and the
        loop is refused with a clear error instead.  A node name is looked up as any
        other reference is.
        """
        inherited = attrs.evolve(parent, read_only=True, auto_read_only=False)
        if len(context.backing_files) >= MAX_BACKING_DEPTH:
            raise QMPError(f"Backing chain is deeper than {MAX_BACKING_DEPTH} images")
        filename = _ref_filename(ref)
        if "driver" not in ref and filename is not None:
            ref = {"driver": self.formats.probe(filename), **ref}
        if filename is not None:
            try:
                info = os.stat(filename)
            except OSError:
                pass
            else:
                chain = (*context.backing_files, node.file_identity())
                if (info.st_dev, info.st_ino) in chain:
                    raise QMPError(f"Backing file '{filename}' is an image of its own "
                                   "backing chain (the chain loops)")
        context.backing_files.append(node.file_identity())
        try:
            return self._open(ref, inherited, context)
        finally:
            context.backing_files.pop()

    def _open_ref(self, ref: Any, parent: CommonOptions, context: _AddContext) -> BlockNode:
        """A BlockdevRef: a node name to look up, or options for an implicit child."""
        if isinstance(ref, str):
            return self.lookup(ref)
        return self._open(ref, parent, context)

    # Section: blockdev-del

    def delete(self, node_name: str) -> None:
        """blockdev-del, with qmp_blockdev_del's checks in its order."""
        node = self._by_name.get(node_name)
        if node is None:
            raise QMPError(f"Failed to find node with node-name='{node_name}'")
        if any(edge.kind is EdgeKind.BACKEND for edge in node.parents):
            raise QMPError(f"Node {node_name} is in use")
        self.check_op(node, "drive-del")
        if not node.monitor_owned:
            raise QMPError(f"Node {node_name} is not owned by the monitor")
        if node.parents:
            raise QMPError(f"Block device {node_name} is in use")
        node.monitor_owned = False
        self._release(node)

    def _release(self, node: BlockNode) -> None:
        """Close a node nobody uses, then any child left without users.

        The node closes first: a format driver writes its tables back through its
        children while closing.
        """
        self._forget(node)
        node.close()
        for edge in list(node.child_edges):
            self._detach(edge)
            child = edge.node
            if not child.parents and not child.monitor_owned:
                self._release(child)

    def close_all(self) -> None:
        """Shutdown: close every node, newest first."""
        for node in reversed(self._nodes):
            node.close()
        self._nodes.clear()
        self._by_name.clear()
        self._blockers.clear()

    # Section: queries

    def query_named_block_nodes(self, flat: bool = False) -> list[dict[str, Any]]:
        """query-named-block-nodes: every node, most recently created first."""
        return [node.info(flat) for node in reversed(self._nodes)]

    # Section: op blockers

    def block_ops(self, node: BlockNode, reason: str,
                  exempt: frozenset[str] = frozenset()) -> OpBlocker:
        """Block operations on ``node`` (except ``exempt`` ones) until released."""
        blocker = OpBlocker(self, node, reason, exempt)
        self._blockers.setdefault(node, []).insert(0, blocker)
        return blocker

    def block_for_job(self, node: BlockNode, job_type: str,
                      exempt: frozenset[str] = frozenset()) -> OpBlocker:
        """What block_job_add_bdrv does to each node a job works on."""
        return self.block_ops(node, job_blocker_reason(job_type), exempt)

    def check_op(self, node: BlockNode, op: str = "") -> None:
        """bdrv_op_is_blocked: "Node 'x' is busy: <reason of the newest blocker>"."""
        for blocker in self._blockers.get(node, ()):
            if op not in blocker.exempt:
                raise QMPError(f"Node '{node.node_name}' is busy: {blocker.reason}")

    def is_blocked(self, node: BlockNode, op: str = "") -> bool:
        return any(op not in b.exempt for b in self._blockers.get(node, ()))

    # Section: permissions

    def acquire(self, node: BlockNode | str, user: str, write: bool, *,
                child_name: str = "root", share_write: bool | None = None,
                perm: Perm | None = None, shared: Perm | None = None,
                kind: EdgeKind = EdgeKind.JOB) -> Permission:
        """Use ``node``: read always, write when ``write``; fails with QEMU's text.

        ``user`` is how QEMU names the user in conflict messages, e.g.
        ``"backup job 'j1'"`` or ``"node '#block579'"``; ``child_name`` is the role
        ("root", "target", "file", ...).  By default a writer does not share write
        and a reader does; ``perm``/``shared`` override the masks entirely.
        """
        target = self.lookup(node) if isinstance(node, str) else node
        if perm is None:
            perm = Perm.CONSISTENT_READ | (Perm.WRITE if write else PERM_NONE)
        if shared is None:
            allow_write = (not write) if share_write is None else share_write
            shared = PERM_ALL if allow_write else PERM_ALL & ~Perm.WRITE
        edge = Edge(node=target, name=child_name, kind=kind, parent_desc=user,
                    perm=perm, shared=shared)
        self._attach(edge)
        return Permission(self, edge)

    def attach_child(self, parent: BlockNode, child: BlockNode, name: str,
                     fixed: tuple[Perm, Perm] | None = None) -> Edge:
        """Make ``child`` a child of ``parent`` (for job filters' extra children)."""
        edge = Edge(node=child, name=name, kind=EdgeKind.NODE,
                    parent_desc=f"node '{parent.node_name}'", parent=parent, fixed=fixed)
        self._attach(edge)
        return edge

    def _attach(self, edge: Edge) -> None:
        """Insert ``edge`` (as the newest parent) and refresh perms, or undo."""
        node = edge.node
        parent = edge.parent
        if parent is not None:
            cperm, cshared = parent.cumulative_perms()
            edge.perm, edge.shared = parent.child_perm(edge, cperm, cshared)
            parent.child_edges.append(edge)
        node.parents.insert(0, edge)
        try:
            self._refresh_or_restore(node, [])
        except BaseException:
            node.parents.remove(edge)
            if parent is not None:
                parent.child_edges.remove(edge)
            raise
        if parent is not None and edge.name == "backing":
            # A backing file may still be committed into, streamed from and backed
            # up; everything else (blockdev-del, mirror...) is refused.
            self._backing_blockers[edge] = self.block_ops(
                node, f"node is used as backing hd of '{parent.node_name}'",
                BACKING_EXEMPT_OPS)

    def _detach(self, edge: Edge) -> None:
        blocker = self._backing_blockers.pop(edge, None)
        if blocker is not None:
            blocker.release()
        node = edge.node
        if edge in node.parents:
            node.parents.remove(edge)
        if edge.parent is not None and edge in edge.parent.child_edges:
            edge.parent.child_edges.remove(edge)
        # Dropping a user only relaxes constraints, so this cannot fail.
        self._refresh(node, [])

    def _set_edge_perms(self, edge: Edge, perm: Perm, shared: Perm) -> None:
        changes: list[tuple[Edge, Perm, Perm]] = [(edge, edge.perm, edge.shared)]
        edge.perm, edge.shared = perm, shared
        self._refresh_or_restore(edge.node, changes)

    def refresh_perms(self, node: BlockNode) -> None:
        """bdrv_child_refresh_perms: what ``node`` needs of its children changed (a
        job filter that stops); raises QMPError and changes nothing on conflict."""
        self._refresh_or_restore(node, [])

    def _refresh_or_restore(self, node: BlockNode,
                            changes: list[tuple[Edge, Perm, Perm]]) -> None:
        """:meth:`_refresh`, and on a conflict every edge's perms put back as
        ``changes`` recorded them (the old values, oldest first)."""
        try:
            self._refresh(node, changes)
        except BaseException:
            for changed, old_perm, old_shared in reversed(changes):
                changed.perm, changed.shared = old_perm, old_shared
            raise

    def _refresh(self, node: BlockNode, changes: list[tuple[Edge, Perm, Perm]]) -> None:
        """bdrv_parent_perms_conflict + bdrv_node_refresh_perm, down the subtree."""
        for a in node.parents:
            for b in node.parents:
                if a is b or (b.perm & a.shared) == b.perm:
                    continue
                name = node.node_name
                raise QMPError(
                    f"Permission conflict on node '{name}': permissions "
                    f"'{perm_names(b.perm & ~a.shared)}' are both required by "
                    f"{b.parent_desc} (uses node '{name}' as '{b.name}' child) and "
                    f"unshared by {a.parent_desc} (uses node '{name}' as '{a.name}' child).")
        perm, shared = node.cumulative_perms()
        if perm & (Perm.WRITE | Perm.WRITE_UNCHANGED):
            if node.read_only:
                raise QMPError("Block node is read-only")
            node.ensure_writable()
        for edge in node.child_edges:
            nperm, nshared = node.child_perm(edge, perm, shared)
            if (nperm, nshared) != (edge.perm, edge.shared):
                changes.append((edge, edge.perm, edge.shared))
                edge.perm, edge.shared = nperm, nshared
                self._refresh(edge.node, changes)

    # Section: backing links

    def set_backing(self, node: BlockNode, backing: BlockNode | None) -> None:
        """bdrv_set_backing_hd: ``node``'s backing child becomes ``backing``.

        The new link is made before the old one goes, so images shared by both
        chains stay open; images left without users are closed.
        """
        old = next((edge for edge in node.child_edges if edge.name == "backing"), None)
        if old is not None and old.node is backing:
            return
        if backing is not None:
            self.attach_child(node, backing, "backing")
        if old is not None:
            self._detach(old)
            if not old.node.parents and not old.node.monitor_owned:
                self._release(old.node)

    # Section: overlays (external snapshots)

    def append(self, overlay: BlockNode, node: BlockNode) -> list[Edge]:
        """bdrv_append: ``node`` becomes the backing file of ``overlay``, which takes
        its place under every parent.

        Jobs keep their own references to ``node`` (QEMU's stay_at_node children),
        and links from inside ``overlay``'s subtree stay where they are, since moving
        them would make a loop (should_update_child).  ``overlay`` must have no
        backing child.  Returns the moved edges for :meth:`undo_append`; raises
        QMPError and changes nothing when a cycle or permission conflict forbids it.

        An overlay on a host file that ``node``'s subtree already uses would write
        into the data it is to preserve; QEMU's file locks stop that, qjobd has
        none and refuses it here, as it refuses looping backing files.
        """
        assert overlay.backing is None
        if _reaches(node, overlay):
            raise QMPError(f"Making '{node.node_name}' a backing child of "
                           f"'{overlay.node_name}' would create a cycle")
        identity = overlay.file_identity()
        if identity is not None and any(below.file_identity() == identity
                                        for below in _subtree(node)):
            raise QMPError(f"Node '{overlay.node_name}' is on an image file of "
                           f"'{node.node_name}' and cannot be its overlay")
        inside = frozenset(edge for below in _subtree(overlay) for edge in below.child_edges)
        for edge in node.parents:
            parent = edge.parent
            if (edge not in inside and parent is not None and edge.kind is not EdgeKind.JOB
                    and not parent.child_replaceable(edge.name)):
                raise QMPError(f"Cannot put an overlay under the '{edge.name}' link of "
                               f"node '{parent.node_name}' (not supported by qjobd)")
        backing = self.attach_child(overlay, node, "backing")
        try:
            return self._move_parents(node, overlay, exclude=inside | {backing})
        except BaseException:
            self._detach(backing)
            raise

    def undo_append(self, overlay: BlockNode, node: BlockNode, moved: list[Edge]) -> None:
        """Undo :meth:`append` (an aborted transaction): the ``moved`` edges point at
        ``node`` again and ``overlay`` has no backing child.  Neither node closes,
        whoever else uses them."""
        self._move_edges([edge for edge in moved if edge.node is overlay], overlay, node)
        for edge in list(overlay.child_edges):
            if edge.name == "backing" and edge.node is node:
                self._detach(edge)

    # Section: job filters

    def insert_filter(self, format_name: str, child: BlockNode, *,
                      node_name: str | None = None,
                      file_perm: tuple[Perm, Perm] | None = None,
                      factory: Callable[[str], FilterNode] | None = None) -> FilterNode:
        """Put a job filter (copy-before-write, mirror_top, ...) above ``child``.

        The filter gets a generated name unless ``node_name`` is given, shows up in
        queries, and takes over ``child``'s node and backend
        parents (job edges stay, like QEMU's stay_at_node children).  ``file_perm``
        fixes what the filter needs on ``child``; None passes its parents' perms
        through.  Raises QMPError (jobs prefix "Could not create node: ").
        """
        node = factory(format_name) if factory else FilterNode(format_name)
        node.read_only = child.read_only
        node.cache_direct = child.cache_direct
        node.cache_no_flush = child.cache_no_flush
        self._assign_name(node, node_name)
        try:
            edge = Edge(node=child, name="file", kind=EdgeKind.NODE,
                        parent_desc=f"node '{node.node_name}'", parent=node, fixed=file_perm)
            self._attach(edge)
        except BaseException:
            self._forget(node)
            raise
        try:
            self._move_parents(child, node, exclude=(edge,))
        except BaseException:
            self._detach(edge)
            self._forget(node)
            raise
        return node

    def remove_filter(self, node: BlockNode) -> None:
        """Undo ``insert_filter``: parents go back to the filtered child."""
        child = node.child_edges[0].node
        self._move_parents(node, child)
        self._release(node)

    def replace_node(self, old: BlockNode, new: BlockNode, *,
                     keep: Edge | None = None) -> None:
        """bdrv_replace_node: every user of ``old`` but jobs (and ``keep``) uses ``new``.

        What a mirror does when it completes: the nodes and backends above the source
        read the copy from then on, while node names stay where they were.  Users
        that are ``new`` itself or lie below it keep ``old`` (should_update_child):
        a ``sync: none`` target whose backing file is the source stays above it.
        Raises QMPError (and changes nothing) when ``new`` cannot grant their
        permissions.
        """
        if old is new:
            return
        self._move_parents(old, new, exclude=() if keep is None else (keep,))

    def _move_parents(self, old: BlockNode, new: BlockNode,
                      exclude: Collection[Edge] = ()) -> list[Edge]:
        """Every parent edge of ``old`` but jobs' (and ``exclude``) now points at
        ``new``; the moved edges, or QMPError and nothing moved.  Parents that are
        ``new`` or lie below it keep ``old`` (should_update_child: moving them would
        make a loop)."""
        below_new = {id(node) for node in _subtree(new)}
        moved = [e for e in old.parents
                 if e not in exclude and e.kind is not EdgeKind.JOB
                 and id(e.parent) not in below_new]
        self._move_edges(moved, old, new)
        return moved

    def _move_edges(self, moved: list[Edge], old: BlockNode, new: BlockNode) -> None:
        for edge in reversed(moved):
            old.parents.remove(edge)
            edge.node = new
            new.parents.insert(0, edge)
        try:
            self._refresh(new, [])
            self._refresh(old, [])
        except BaseException:
            for edge in reversed(moved):
                new.parents.remove(edge)
                edge.node = old
                old.parents.insert(0, edge)
            self._refresh(new, [])
            self._refresh(old, [])
            raise
        for edge in moved:
            blocker = self._backing_blockers.get(edge)
            if blocker is not None:
                # The backing file's blocker goes where the backing link now points.
                blocker.release()
                self._backing_blockers[edge] = self.block_ops(
                    new, blocker.reason, BACKING_EXEMPT_OPS)


def _subtree(node: BlockNode) -> Iterator[BlockNode]:
    """``node`` and every node below it, each once."""
    seen: set[int] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(edge.node for edge in current.child_edges)


def _reaches(top: BlockNode, node: BlockNode) -> bool:
    """bdrv_recurse_has_child: ``node`` is ``top`` or anywhere below it."""
    return any(below is node for below in _subtree(top))


def _ref_filename(ref: dict[str, Any]) -> str | None:
    """The host file an inline BlockdevRef opens, found down its "file" children."""
    while isinstance(ref, dict):
        if ref.get("driver") == "file" and isinstance(ref.get("filename"), str):
            return str(ref["filename"])
        ref = ref.get("file")  # type: ignore[assignment]
    return None

"""Structuring and unstructuring with QEMU's exact input-visitor semantics.

Structuring a command's arguments must reject bad input with the very text
qemu-storage-daemon 7.2 would send, and QEMU reports only the *first* problem in its
visiting order.  The rules reproduced here (from ``qapi/qobject-input-visitor.c``,
``qapi/qapi-visit-core.c`` and the code ``scripts/qapi/visit.py`` generates):

* members are visited in schema order, base members first; a union then visits the
  branch selected by its discriminator; only after all of an object's members (branch
  included) are its leftover keys reported, so an unexpected key in a nested object is
  reported before problems in later members of the enclosing object;
* ``Parameter 'P' is missing``, ``Invalid parameter type for 'P', expected: T`` and
  ``Parameter 'P' is unexpected`` name the full path ``P`` (``options.size``,
  ``actions[0].type``, ``enable[0]``);
* enum values, int8..int32 / uint8..uint32 ranges and alternates name only the
  member itself, or ``null`` inside a list: ``Parameter 'driver' does not accept value
  'x'``, ``Parameter 'granularity' expects uint32_t``, ``Invalid parameter type for
  'file', expected: BlockdevRef`` (the alternate's QAPI name);
* ``int``/``int64`` accept JSON integers in -2**63..2**63-1 (``true``, ``1.0`` and
  larger integers are type errors, ``expected: integer``); ``uint64``/``size`` accept
  -2**63..2**64-1 and wrap negatives modulo 2**64, anything else is ``Parameter 'P'
  expects uint64``; the narrower types first apply the 64-bit rule of their sign and
  then the range check; ``number`` accepts any JSON number;
* with several unexpected keys, the one reported follows GLib's hash-table order
  (see :mod:`qjobd.model.keyorder`).

The functions are generated as Python source, once, when the model is built: one
visitor per object type (plus one per union branch), array and alternate, with scalar
checks inlined.  Frames for error paths are tiny tuples ``(parent, name, index)``
(``index`` None for an object) built only when a nested container is entered, and
the message text is produced only on failure.

Unstructuring (return values and event data) follows ``qobject-output-visitor.c``:
members in visiting order, absent optional members left out, enums as strings,
``number`` as float.  It trusts handlers to build values of the right types.

The module also builds the project's one :class:`cattrs.Converter`, with a structure
and an unstructure hook per generated class and enum; its structure hooks apply the
same rules (a top-level value has no name, so it reads ``<anonymous>``).  cattrs'
own ``make_dict_structure_fn`` is not used: it cannot reproduce QEMU's visiting order,
error naming or unexpected-key order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import cattrs

from .build import (
    ABSENT,
    AlternateNode,
    ArrayNode,
    BuiltinNode,
    EnumNode,
    MemberNode,
    Node,
    ObjectNode,
    QAPIStruct,
)
from .errors import ArgumentError
from .keyorder import first_unexpected

__all__ = ["Conversions", "full_name"]

Frame = tuple[Any, str | None, int | None] | None

#: The frame of a command's argument object (the root of a QMP visit).
ROOT: Final[Frame] = (None, None, None)

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1

_INT_RANGES: Final = {
    "int8": (-(2**7), 2**7 - 1, "int8_t"),
    "int16": (-(2**15), 2**15 - 1, "int16_t"),
    "int32": (-(2**31), 2**31 - 1, "int32_t"),
}
_UINT_RANGES: Final = {
    "uint8": (2**8 - 1, "uint8_t"),
    "uint16": (2**16 - 1, "uint16_t"),
    "uint32": (2**32 - 1, "uint32_t"),
}


def full_name(frame: Frame, name: str | None) -> str:
    """The path QEMU prints for ``name`` visited inside ``frame``.

    Mirrors ``full_name_nth(qiv, name, 0)``: objects contribute ``.member``, lists
    ``[index]``; an unnamed member reads ``<anonymous>``.
    """
    parts: list[str] = []
    while frame is not None:
        parent, frame_name, index = frame
        if index is None:
            parts.append(name if name is not None else "<anonymous>")
            parts.append(".")
        else:
            parts.append(f"[{index}]")
        name = frame_name
        frame = parent
    text = "".join(reversed(parts))
    if name is not None:
        return name + text
    if text.startswith("."):
        return text[1:]
    if not text:
        return "<anonymous>"
    return text


def _plain(name: str | None) -> str:
    return name if name is not None else "null"


def _missing(frame: Frame, name: str) -> ArgumentError:
    return ArgumentError(f"Parameter '{full_name(frame, name)}' is missing")


def _type_error(frame: Frame, name: str | None, expected: str) -> ArgumentError:
    path = full_name(frame, name)
    return ArgumentError(f"Invalid parameter type for '{path}', expected: {expected}")


def _value_error(frame: Frame, name: str | None, expected: str) -> ArgumentError:
    return ArgumentError(f"Parameter '{full_name(frame, name)}' expects {expected}")


def _range_error(name: str | None, expected: str) -> ArgumentError:
    return ArgumentError(f"Parameter '{_plain(name)}' expects {expected}")


def _enum_error(name: str | None, value: str) -> ArgumentError:
    return ArgumentError(f"Parameter '{_plain(name)}' does not accept value '{value}'")


def _alternate_error(name: str | None, alternate: str) -> ArgumentError:
    return ArgumentError(f"Invalid parameter type for '{_plain(name)}', expected: {alternate}")


def _unexpected(d: Mapping[str, Any], frame: Frame, visited: tuple[str, ...]) -> ArgumentError:
    key = first_unexpected(list(d), visited)
    assert key is not None
    return ArgumentError(f"Parameter '{full_name(frame, key)}' is unexpected")


def _to_double(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _no_args(d: Mapping[str, Any], me: Frame = ROOT) -> None:
    if d:
        raise _unexpected(d, me, ())


def _bad_output(what: str, value: Any) -> TypeError:
    return TypeError(f"cannot unstructure {type(value).__name__} value {value!r} as {what}")


_MISSING: Final = object()


class _Source:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, indent: int, *lines: str) -> None:
        pad = "    " * indent
        self.lines.extend(pad + line for line in lines)


class Conversions:
    """Compiled converters for every node of a model.

    :param nodes: every node, by QAPI name (from :class:`~qjobd.model.build.TypeBuilder`).
    """

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self._nodes = nodes
        self._ids: dict[str, int] = {name: i for i, name in enumerate(nodes)}
        self.namespace: dict[str, Any] = {
            "_M": _MISSING,
            "_ROOT": ROOT,
            "_missing": _missing,
            "_type_error": _type_error,
            "_value_error": _value_error,
            "_range_error": _range_error,
            "_enum_error": _enum_error,
            "_alternate_error": _alternate_error,
            "_unexpected": _unexpected,
            "_to_double": _to_double,
            "_bad_output": _bad_output,
            "_QAPIStruct": QAPIStruct,
            "_ABSENT": ABSENT,
        }
        src = _Source()
        for name, node in nodes.items():
            self._gen_node(src, self._ids[name], node)
        self._exec(src)
        self.converter = self._make_converter()

    def _exec(self, src: _Source) -> None:
        code = compile("\n".join(src.lines) + "\n", "<qjobd.model generated>", "exec")
        exec(code, self.namespace)

    # Section: public accessors

    def _fn(self, prefix: str, node: Node) -> Callable[..., Any]:
        """The generated function ``<prefix><id>``; root wrappers are made on demand."""
        i = self._ids[node.name]
        name = f"{prefix}{i}"
        fn: Callable[..., Any] | None = self.namespace.get(name)
        if fn is None:
            src = _Source()
            src.add(0, f"def {name}(v):")
            if prefix == "_r":
                src.add(1, *self._check(node, "v", "None", "None"), "return v")
            else:
                src.add(1, f"return {self._out(node, 'v')}")
            self._exec(src)
            fn = self.namespace[name]
        assert fn is not None
        return fn

    def object_visitor(self, node: ObjectNode) -> Callable[[dict[str, Any]], Any]:
        """``f(d)``: visit ``d`` as the members of ``node`` at the root of a QMP visit.

        This is what QEMU does with a command's ``arguments``: the object itself has
        no name, so a missing member ``id`` reads ``id``.
        """
        return self._fn("_s", node)

    def structurer(self, node: Node) -> Callable[[Any], Any]:
        """``f(value)``: structure a top-level value of ``node``'s type (no name)."""
        return self._fn("_r", node)

    def unstructurer(self, node: Node) -> Callable[[Any], Any]:
        """``f(value)``: a JSON-ready value (dicts, lists, str, int, float, bool, None)."""
        return self._fn("_o", node)

    # Section: generation

    def _id(self, node: Node) -> int:
        return self._ids[node.name]

    def _gen_node(self, src: _Source, i: int, node: Node) -> None:
        if isinstance(node, EnumNode):
            self.namespace[f"_E{i}"] = {v: node.py_type(v) for v in node.values}
            self.namespace[f"_EO{i}"] = {v: v for v in node.values}
        elif isinstance(node, ObjectNode):
            self.namespace[f"_C{i}"] = node.py_type
            self._gen_struct(src, i, node)
            self._gen_struct_out(src, i, node)
        elif isinstance(node, ArrayNode):
            self._gen_array(src, i, node)
        elif isinstance(node, AlternateNode):
            self._gen_alternate(src, i, node)
            self._gen_alternate_out(src, i, node)

    def _check(self, node: Node, v: str, frame: str, name: str) -> list[str]:
        """Statements checking/converting local ``v`` in place.

        ``frame`` and ``name`` are expressions for the enclosing frame and the value's
        name (only evaluated on error paths, or to enter a nested object).
        """
        if isinstance(node, BuiltinNode):
            return self._check_builtin(node.name, v, frame, name)
        if isinstance(node, EnumNode):
            i = self._id(node)
            return [
                f"if not isinstance({v}, str): raise _type_error({frame}, {name}, 'string')",
                f"_e = _E{i}.get({v})",
                f"if _e is None: raise _enum_error({name}, {v})",
                f"{v} = _e",
            ]
        if isinstance(node, ObjectNode):
            i = self._id(node)
            return [
                f"if not isinstance({v}, dict): raise _type_error({frame}, {name}, 'object')",
                f"{v} = _s{i}({v}, ({frame}, {name}, None))",
            ]
        if isinstance(node, ArrayNode):
            return [f"{v} = _a{self._id(node)}({v}, {frame}, {name})"]
        return [f"{v} = _x{self._id(node)}({v}, {frame}, {name})"]

    @staticmethod
    def _check_builtin(kind: str, v: str, frame: str, name: str) -> list[str]:
        int64 = f"type({v}) is not int or not {_INT64_MIN} <= {v} <= {_INT64_MAX}"
        uint64 = f"type({v}) is not int or not {_INT64_MIN} <= {v} <= {_UINT64_MAX}"
        if kind == "str":
            return [f"if not isinstance({v}, str): raise _type_error({frame}, {name}, 'string')"]
        if kind in ("int", "int64"):
            return [f"if {int64}: raise _type_error({frame}, {name}, 'integer')"]
        if kind in _INT_RANGES:
            lo, hi, label = _INT_RANGES[kind]
            return [
                f"if {int64}: raise _type_error({frame}, {name}, 'integer')",
                f"if not {lo} <= {v} <= {hi}: raise _range_error({name}, {label!r})",
            ]
        if kind in ("uint64", "size", *_UINT_RANGES):
            lines = [
                f"if {uint64}: raise _value_error({frame}, {name}, 'uint64')",
                f"if {v} < 0: {v} += {_UINT64_MAX + 1}",
            ]
            if kind in _UINT_RANGES:
                hi, label = _UINT_RANGES[kind]
                lines.append(f"if {v} > {hi}: raise _range_error({name}, {label!r})")
            return lines
        if kind == "number":
            return [
                f"if type({v}) is not float:",
                f"    if type({v}) is int: {v} = _to_double({v})",
                f"    else: raise _type_error({frame}, {name}, 'number')",
            ]
        if kind == "bool":
            return [f"if {v} is not True and {v} is not False: "
                    f"raise _type_error({frame}, {name}, 'boolean')"]  # fmt: skip
        if kind == "null":
            return [f"if {v} is not None: raise _type_error({frame}, {name}, 'null')"]
        assert kind == "any", kind
        return []

    def _gen_members(self, src: _Source, members: list[MemberNode], first: int) -> list[str]:
        """Visit ``members`` of dict ``d`` in frame ``me``, counting present keys in ``n``.

        Returns the local variable of each member (``v<first>``, ...).
        """
        names = []
        for k, m in enumerate(members, start=first):
            v = f"v{k}"
            names.append(v)
            key = repr(m.name)
            src.add(1, f"{v} = d.get({key}, _M)")
            checks = self._check(m.type, v, "me", key)
            if m.optional:
                absent = "None" if m.absent is None else "_ABSENT"
                src.add(1, f"if {v} is _M:", f"    {v} = {absent}", "else:", "    n += 1")
                src.add(2, *checks)
            else:
                src.add(1, f"if {v} is _M: raise _missing(me, {key})")
                src.add(1, *checks)
        return names

    def _gen_struct(self, src: _Source, i: int, node: ObjectNode) -> None:
        required = sum(1 for m in node.members if not m.optional)
        member_names = tuple(m.name for m in node.members)
        src.add(0, f"def _s{i}(d, me=_ROOT):")
        src.add(1, f"n = {required}")
        local = self._gen_members(src, node.members, 0)
        kwargs = [f"{m.attr}={v}" for m, v in zip(node.members, local, strict=True)]
        if node.tag is None:
            self.namespace[f"_N{i}"] = member_names
            src.add(1, f"if len(d) != n: raise _unexpected(d, me, _N{i})")
            src.add(1, f"return _C{i}({', '.join(kwargs)})", "")
            return
        tag_var = local[node.members.index(node.tag)]
        kwargs.append(f"u=_B{i}[{tag_var}](d, me, n)")
        src.add(1, f"return _C{i}({', '.join(kwargs)})", "")
        assert isinstance(node.tag.type, EnumNode)
        src_names: dict[str, str] = {}
        for j, (value, branch) in enumerate(node.branches.items()):
            fname = f"_b{i}_{j}"
            src_names[value] = fname
            members = branch.members if branch is not None else []
            self.namespace[f"_N{i}_{j}"] = member_names + tuple(m.name for m in members)
            src.add(0, f"def {fname}(d, me, n):")
            branch_required = sum(1 for m in members if not m.optional)
            if branch_required:
                src.add(1, f"n += {branch_required}")
            local = self._gen_members(src, members, 0)
            src.add(1, f"if len(d) != n: raise _unexpected(d, me, _N{i}_{j})")
            if branch is None:
                src.add(1, "return None", "")
            else:
                kw = [f"{m.attr}={v}" for m, v in zip(members, local, strict=True)]
                src.add(1, f"return _C{self._id(branch)}({', '.join(kw)})", "")
        table = ", ".join(f"_E{self._id(node.tag.type)}[{v!r}]: {f}" for v, f in src_names.items())
        src.add(0, f"_B{i} = {{{table}}}", "")

    def _gen_array(self, src: _Source, i: int, node: ArrayNode) -> None:
        src.add(0, f"def _a{i}(v, frame, name):")
        src.add(1, "if not isinstance(v, list): raise _type_error(frame, name, 'array')")
        src.add(1, "out = []", "for i, x in enumerate(v):")
        src.add(2, *self._check(node.element, "x", "(frame, name, i)", "None"))
        src.add(2, "out.append(x)")
        src.add(1, "return out", "")

    def _gen_alternate(self, src: _Source, i: int, node: AlternateNode) -> None:
        tests = {
            "qdict": "isinstance(v, dict)",
            "qlist": "isinstance(v, list)",
            "qstring": "isinstance(v, str)",
            "qbool": "v is True or v is False",
            "qnum": "type(v) is int or type(v) is float",
            "qnull": "v is None",
        }
        src.add(0, f"def _x{i}(v, frame, name):")
        for qtype, branch in node.branches:
            src.add(1, f"if {tests[qtype]}:")
            src.add(2, *self._check(branch, "v", "frame", "name"))
            src.add(2, "return v")
        src.add(1, f"raise _alternate_error(name, {node.name!r})", "")

    # Section: output

    def _out(self, node: Node, expr: str) -> str:
        """An expression turning ``expr`` (a value of ``node``) into JSON-ready data."""
        if isinstance(node, BuiltinNode):
            return f"float({expr})" if node.name == "number" else expr
        if isinstance(node, EnumNode):
            return f"_EO{self._id(node)}[{expr}]"
        if isinstance(node, ObjectNode):
            return f"_u{self._id(node)}({expr})"
        if isinstance(node, ArrayNode):
            inner = self._out(node.element, "x")
            if inner == "x":
                return f"list({expr})"
            return f"[{inner} for x in {expr}]"
        return f"_ux{self._id(node)}({expr})"

    def _gen_fill(self, src: _Source, members: list[MemberNode]) -> None:
        for m in members:
            key = repr(m.name)
            if m.optional:
                absent = "None" if m.absent is None else "_ABSENT"
                src.add(1, f"x = o.{m.attr}", f"if x is not {absent}:")
                src.add(2, f"d[{key}] = {self._out(m.type, 'x')}")
            else:
                src.add(1, f"d[{key}] = {self._out(m.type, 'o.' + m.attr)}")

    def _gen_struct_out(self, src: _Source, i: int, node: ObjectNode) -> None:
        src.add(0, f"def _u{i}(o):")
        src.add(1, f"if not isinstance(o, _C{i}): raise _bad_output({node.name!r}, o)")
        src.add(1, "d = {}")
        self._gen_fill(src, node.members)
        if node.tag is not None:
            tag_key = repr(node.tag.name)
            src.add(1, f"_UB{i}[d[{tag_key}]](o.u, d)")
        src.add(1, "return d", "")
        if node.tag is None:
            return
        table = []
        for j, (value, branch) in enumerate(node.branches.items()):
            fname = f"_ub{i}_{j}"
            table.append(f"{value!r}: {fname}")
            src.add(0, f"def {fname}(o, d):")
            if branch is None:
                src.add(1, "pass", "")
                continue
            what = f"{node.name} branch {value}"
            cls = f"_C{self._id(branch)}"
            src.add(1, f"if not isinstance(o, {cls}): raise _bad_output({what!r}, o)")
            self._gen_fill(src, branch.members)
            src.add(0, "")
        src.add(0, f"_UB{i} = {{{', '.join(table)}}}", "")

    def _gen_alternate_out(self, src: _Source, i: int, node: AlternateNode) -> None:
        src.add(0, f"def _ux{i}(v):")
        for qtype, branch in node.branches:
            if qtype == "qdict":
                src.add(1, "if isinstance(v, _QAPIStruct):")
            elif qtype == "qlist":
                src.add(1, "if isinstance(v, list):")
            elif qtype == "qstring":
                src.add(1, "if isinstance(v, str):")
            elif qtype == "qbool":
                src.add(1, "if v is True or v is False:")
            elif qtype == "qnull":
                src.add(1, "if v is None:")
            elif isinstance(branch, BuiltinNode) and branch.name == "number":
                src.add(1, "if type(v) is float or type(v) is int:")
            else:
                src.add(1, "if type(v) is int:")
            src.add(2, f"return {self._out(branch, 'v')}")
        src.add(1, f"raise _bad_output({node.name!r}, v)", "")

    # Section: cattrs

    def _make_converter(self) -> cattrs.Converter:
        converter = cattrs.Converter()
        for node in self._nodes.values():
            if isinstance(node, ObjectNode):
                unstructure = self.namespace[f"_u{self._id(node)}"]
            elif isinstance(node, EnumNode):
                unstructure = self.namespace[f"_EO{self._id(node)}"].__getitem__
            else:
                continue
            converter.register_structure_hook(node.py_type, self._lazy_structurer(node))
            converter.register_unstructure_hook(node.py_type, unstructure)
        return converter

    def _lazy_structurer(self, node: Node) -> Callable[[Any, Any], Any]:
        def hook(value: Any, _type: Any) -> Any:
            return self.structurer(node)(value)

        return hook

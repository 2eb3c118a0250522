"""Typing keyval options through the schema, as QEMU's keyval input visitor does.

Keyval text (:mod:`qjobd.keyval`) only has strings, so QEMU visits the parsed tree
with a variant of its input visitor that converts each string to the type the
schema expects where it meets it (``qobject_input_visitor_new_keyval`` in
``qapi/qobject-input-visitor.c``).  This module walks a parsed tree against a
model :data:`~qjobd.model.build.Node` in the same visiting order as
:mod:`qjobd.model.convert` (schema order, base first, the union's branch, leftover
keys last), and returns the JSON value QMP would have carried: the result then goes
through the ordinary QMP path, so the command sees exactly what a QMP client could
have sent.

What differs from QMP's visitor, and is reproduced here:

* integers are C's ``strtoll``/``strtoull`` with base 0 (``0x1f``, octal ``017``,
  ``-1`` wraps for unsigned types), the whole text or ``Parameter 'P' expects
  integer``; ``size`` takes ``k``/``M``/``G``/``T``/``P``/``E`` suffixes and
  fractions (``1.5G``), else ``expects size``; booleans are ``on``/``yes``/``true``/
  ``y`` or ``off``/``no``/``false``/``n``, else ``expects 'on' or 'off'``; numbers
  are finite decimal floats, else ``Invalid parameter type ..., expected: number``;
* a scalar met as an object or list is ``Parameters 'P.*' are unexpected``;
* list elements are named ``P.0``, not ``P[0]``;
* an alternate takes the branch for the value's shape: a string picks its string
  or enum branch (so ``backing=`` is the node name ``""``, never null);
* ``any`` takes the tree as it is.
"""

from __future__ import annotations

import re
from typing import Any, Final

from qjobd.options.keyval import keyval_bool

from .build import AlternateNode, ArrayNode, BuiltinNode, EnumNode, MemberNode, Node, ObjectNode
from .errors import ArgumentError
from .keyorder import first_unexpected

__all__ = ["visit_keyval"]

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
_RANGES: Final = {
    "int8": (-(2**7), 2**7 - 1, "int8_t"),
    "int16": (-(2**15), 2**15 - 1, "int16_t"),
    "int32": (-(2**31), 2**31 - 1, "int32_t"),
    "uint8": (0, 2**8 - 1, "uint8_t"),
    "uint16": (0, 2**16 - 1, "uint16_t"),
    "uint32": (0, 2**32 - 1, "uint32_t"),
}
_SPACE: Final = " \t\n\v\f\r"
_C_INTEGER: Final = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")
_C_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SIZE: Final = re.compile(
    r"[ \t\n\v\f\r]*\+?(?:0[xX]([0-9a-fA-F]+)|([0-9]+)(\.[0-9]*)?)([bBkKmMgGtTpPeE]?)")
_SUFFIX: Final = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}

#: Path of the value being visited: names of objects, indexes of lists.
Path = tuple[str | int, ...]


def _name(path: Path) -> str:
    return ".".join(str(part) for part in path) if path else "<anonymous>"


def _own(path: Path) -> str:
    """The member's own name, as QEMU prints it in enum and range errors."""
    return path[-1] if path and isinstance(path[-1], str) else "null"


def c_integer(text: str, unsigned: bool) -> int | None:
    """``strtoll``/``strtoull`` with base 0 over the whole text, or None."""
    match = _C_INTEGER.fullmatch(text.lstrip(_SPACE))
    if match is None:
        return None
    sign, hex_digits, octal, decimal = match.groups()
    if hex_digits is not None:
        value = int(hex_digits, 16)
    elif octal is not None:
        value = int(octal, 8)
    else:
        value = int(decimal)
    if unsigned:
        if value > _UINT64_MAX:
            return None
        return (-value) % 2**64 if sign == "-" else value
    value = -value if sign == "-" else value
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def c_size(text: str) -> int | None:
    """``qemu_strtosz``: a byte count with an optional binary suffix, or None."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    hex_digits, whole, fraction, suffix = match.groups()
    if hex_digits is not None:
        value, fixed = int(hex_digits, 16), 0
    else:
        value = int(whole)
        fixed = int(float("0" + fraction) * 2**64) if fraction else 0
    if value > _UINT64_MAX:
        return None
    multiplier = 1024 ** _SUFFIX[suffix.lower()]
    if multiplier == 1:
        return None if fixed else value
    part = fixed * multiplier
    total = value * multiplier + (part >> 64) + ((part >> 63) & 1)
    return total if total <= _UINT64_MAX else None


def c_double(text: str) -> float | None:
    """A finite ``strtod`` result over the whole text, or None."""
    body = text.lstrip(_SPACE)
    if _C_FLOAT.fullmatch(body) is None:
        return None
    value = float(body)
    if value in (float("inf"), float("-inf")):
        return None
    if value == 0.0 and any(digit in "123456789" for digit in body.split("e")[0].split("E")[0]):
        return None  # underflow: strtod reports ERANGE
    return value


def _string(value: Any, path: Path) -> str:
    if isinstance(value, dict | list):
        raise ArgumentError(f"Parameters '{_name(path)}.*' are unexpected")
    assert isinstance(value, str)
    return value


def _builtin(kind: str, value: Any, path: Path) -> Any:
    if kind == "any":
        return value
    if kind == "null":
        raise ArgumentError(f"Invalid parameter type for '{_name(path)}', expected: null")
    text = _string(value, path)
    if kind == "str":
        return text
    if kind == "bool":
        flag = keyval_bool(text)
        if flag is not None:
            return flag
        raise ArgumentError(f"Parameter '{_name(path)}' expects 'on' or 'off'")
    if kind == "number":
        number = c_double(text)
        if number is None:
            raise ArgumentError(f"Invalid parameter type for '{_name(path)}', expected: number")
        return number
    if kind == "size":
        size = c_size(text)
        if size is None:
            raise ArgumentError(f"Parameter '{_name(path)}' expects size")
        return size
    unsigned = kind.startswith("uint")
    integer = c_integer(text, unsigned)
    if integer is None:
        raise ArgumentError(f"Parameter '{_name(path)}' expects integer")
    if kind in _RANGES:
        low, high, label = _RANGES[kind]
        if not low <= integer <= high:
            raise ArgumentError(f"Parameter '{_own(path)}' expects {label}")
    return integer


def _members(node_members: list[MemberNode], tree: dict[str, Any], path: Path,
             out: dict[str, Any]) -> None:
    for member in node_members:
        if member.name not in tree:
            if member.optional:
                continue
            raise ArgumentError(f"Parameter '{_name((*path, member.name))}' is missing")
        out[member.name] = _visit(member.type, tree[member.name], (*path, member.name))


def _object(node: ObjectNode, tree: Any, path: Path) -> dict[str, Any]:
    if not isinstance(tree, dict):
        raise ArgumentError(f"Invalid parameter type for '{_name(path)}', expected: object")
    out: dict[str, Any] = {}
    _members(node.members, tree, path, out)
    visited = [member.name for member in node.members]
    if node.tag is not None:
        branch = node.branches.get(out[node.tag.name])
        if branch is not None:
            _members(branch.members, tree, path, out)
            visited += [member.name for member in branch.members]
    if len(out) != len(tree):
        key = first_unexpected(list(tree), visited)
        assert key is not None
        raise ArgumentError(f"Parameter '{_name((*path, key))}' is unexpected")
    return out


def _visit(node: Node, tree: Any, path: Path) -> Any:
    if isinstance(node, BuiltinNode):
        return _builtin(node.name, tree, path)
    if isinstance(node, EnumNode):
        text = _string(tree, path)
        if text not in node.values:
            raise ArgumentError(f"Parameter '{_own(path)}' does not accept value '{text}'")
        return text
    if isinstance(node, ObjectNode):
        return _object(node, tree, path)
    if isinstance(node, ArrayNode):
        if not isinstance(tree, list):
            raise ArgumentError(f"Invalid parameter type for '{_name(path)}', expected: array")
        return [_visit(node.element, item, (*path, i)) for i, item in enumerate(tree)]
    assert isinstance(node, AlternateNode)
    shape = "qdict" if isinstance(tree, dict) else "qlist" if isinstance(tree, list) else "qstring"
    for qtype, branch in node.branches:
        if qtype == shape:
            return _visit(branch, tree, path)
    raise ArgumentError(f"Invalid parameter type for '{_own(path)}', expected: {node.name}")


def visit_keyval(node: Node, tree: dict[str, Any]) -> Any:
    """The JSON value of the keyval ``tree`` read as a value of ``node``'s type.

    The tree is the root of the visit (a command's arguments or a boxed option).

    :raise ArgumentError: the first problem in QEMU's visiting order, worded as QEMU's
        keyval visitor words it.
    """
    return _visit(node, tree, ())

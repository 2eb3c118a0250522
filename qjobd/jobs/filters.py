"""Job filters: TrueNAS-style ``[field, operator, value]`` triples over JobInfo.

``query-jobs`` and ``x-query-job-history`` take a list of them and list the jobs for
which all hold.  :func:`compile_filters` checks a list completely before anything is
listed, and refuses what it cannot run with QEMU's error wording, naming the bad part
as QEMU's visitors name list elements (``filters[0][1]``).  The predicate it returns
reads the detailed JobInfo dicts of :mod:`qjobd.jobs.details`.  Pure.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

from qjobd.errors import QMPError

__all__ = ["FIELDS", "JobPredicate", "compile_filters"]

JobPredicate = Callable[[Mapping[str, Any]], bool]

#: Field -> kind: "str", "int", "bool", "time" (seconds as a number), "enum" (a str
#: from a given set), "any" (any JSON value, compared for equality only).
FIELDS: Final[Mapping[str, str]] = {
    "id": "str", "type": "enum", "status": "enum", "current-progress": "int",
    "total-progress": "int", "error": "str", "progress-description": "str",
    "time-created": "time", "time-started": "time", "time-finished": "time",
    "started-by": "any", "started-by-uid": "int", "command": "str", "arguments": "any",
    "speed": "int", "rate": "int", "expected-end": "time", "progress-valid": "bool",
}

_ORDERING: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OPERATORS: Final = ("=", "!=", *_ORDERING, "in", "nin", "^", "$")
#: Which operators each kind of field takes.
_ALLOWED: Final[Mapping[str, frozenset[str]]] = {
    "str": frozenset(_OPERATORS),
    "enum": frozenset(_OPERATORS),
    "int": frozenset({"=", "!=", "in", "nin", *_ORDERING}),
    "time": frozenset({"=", "!=", "in", "nin", *_ORDERING}),
    "bool": frozenset({"=", "!=", "in", "nin"}),
    "any": frozenset({"=", "!=", "in", "nin"}),
}
_EXPECTED: Final = {"str": "string", "enum": "string", "int": "integer", "time": "number",
                    "bool": "boolean"}


def same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, and 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return bool(a == b)


def _fits(kind: str, value: Any) -> bool:
    if kind in ("str", "enum"):
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "time":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    return True


def _check_value(name: str, field: str, kind: str, value: Any, nullable: bool,
                 enums: Mapping[str, Collection[str]]) -> None:
    if value is None and nullable:
        return
    if not _fits(kind, value):
        raise QMPError(f"Invalid parameter type for '{name}', expected: {_EXPECTED[kind]}")
    if kind == "enum" and value not in enums.get(field, ()):
        raise QMPError(f"Parameter '{name}' does not accept value '{value}'")


def _field_value(info: Mapping[str, Any], field: str, kind: str) -> Any:
    value = info.get(field)
    if kind == "time" and value is not None:
        return value["seconds"] + value["microseconds"] / 1e6
    return value


def _one(name: str, triple: Any, enums: Mapping[str, Collection[str]]) -> JobPredicate:
    if not isinstance(triple, list) or len(triple) != 3:
        raise QMPError(f"Invalid parameter type for '{name}', "
                       "expected: array [field, operator, value]")
    field, op, value = triple
    if not isinstance(field, str):
        raise QMPError(f"Invalid parameter type for '{name}[0]', expected: string")
    kind = FIELDS.get(field)
    if kind is None:
        raise QMPError(f"Parameter '{name}[0]' does not accept value '{field}'")
    if not isinstance(op, str):
        raise QMPError(f"Invalid parameter type for '{name}[1]', expected: string")
    if op not in _OPERATORS:
        raise QMPError(f"Parameter '{name}[1]' does not accept value '{op}'")
    if op not in _ALLOWED[kind]:
        raise QMPError(f"Parameter '{name}[1]' does not accept value '{op}' "
                       f"for field '{field}'")
    if kind == "any":
        def get(info: Mapping[str, Any]) -> Any:
            return info.get(field)
    else:
        def get(info: Mapping[str, Any]) -> Any:
            return _field_value(info, field, kind)

    if op in ("in", "nin"):
        if not isinstance(value, list):
            raise QMPError(f"Invalid parameter type for '{name}[2]', expected: array")
        for index, element in enumerate(value):
            _check_value(f"{name}[2][{index}]", field, kind, element, True, enums)
        wanted = op == "in"
        choices: Sequence[Any] = value
        return lambda info: any(same(get(info), c) for c in choices) == wanted
    _check_value(f"{name}[2]", field, kind, value, op in ("=", "!="), enums)
    if op == "=":
        return lambda info: same(get(info), value)
    if op == "!=":
        return lambda info: not same(get(info), value)
    if op == "^":
        return lambda info: isinstance(got := get(info), str) and got.startswith(value)
    if op == "$":
        return lambda info: isinstance(got := get(info), str) and got.endswith(value)
    compare = _ORDERING[op]
    return lambda info: (got := get(info)) is not None and bool(compare(got, value))


def compile_filters(filters: Sequence[Any] | None, enums: Mapping[str, Collection[str]],
                    parameter: str = "filters") -> JobPredicate:
    """A predicate on detailed JobInfo dicts that holds when every filter does.

    :param enums: the values of each enum field ("type", "status").
    :raise QMPError: a filter is malformed, names an unknown field or operator, or
        compares with a value of the wrong type.
    """
    checks = [_one(f"{parameter}[{index}]", triple, enums)
              for index, triple in enumerate(filters or ())]
    return lambda info: all(check(info) for check in checks)

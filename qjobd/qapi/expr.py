"""Context-free checking and desugaring of schema expressions.

The parser hands over raw JSON-like values.  This module checks everything
that can be checked by looking at one expression in isolation (which keys
are allowed, names follow the naming rules, ``if`` conditions are well
formed, flags have valid values) and converts the expression into a typed
*definition* with all syntactic sugar removed:

* ``'*name': ...`` becomes an optional member ``name``;
* ``'name': 'Type'`` becomes ``{'type': 'Type'}``;
* ``'features': ['f']`` becomes ``[{'name': 'f'}]``, enum values likewise;
* ``['Type']`` becomes an array reference.

Checks that need other definitions (unknown types, clashes between a type
and its base, ...) are left to :mod:`qjobd.qapi.schema`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Set

import attrs

from .error import QAPISemError
from .parser import DocBlock, JSONValue, ParsedExpr
from .source import SourceInfo

__all__ = [
    "AlternateDef",
    "BranchDef",
    "CommandDef",
    "Definition",
    "EnumDef",
    "EnumValueDef",
    "EventDef",
    "FeatureDef",
    "IfAll",
    "IfAny",
    "IfCond",
    "IfExpr",
    "IfNot",
    "IncludeDef",
    "MemberDef",
    "StructDef",
    "TypeRef",
    "UnionDef",
    "c_name",
    "check_exprs",
]

JSONObject = dict[str, JSONValue]

# Section: conditions


@attrs.frozen
class IfAll:
    """True when all operands are (``{'all': [...]}``)."""

    operands: tuple[IfExpr, ...]


@attrs.frozen
class IfAny:
    """True when at least one operand is (``{'any': [...]}``)."""

    operands: tuple[IfExpr, ...]


@attrs.frozen
class IfNot:
    """Negation (``{'not': ...}``)."""

    operand: IfExpr


#: A condition: a configuration symbol such as ``'CONFIG_LINUX'``, or a
#: combination.
IfExpr = str | IfAll | IfAny | IfNot


class IfCond:
    """A possibly absent ``if`` condition of a definition, member or feature.

    QEMU compiles schema conditions into C preprocessor conditionals.  A
    runtime-generated protocol instead evaluates them against the set of
    configuration symbols it considers defined (see :meth:`evaluate`).
    """

    __slots__ = ("expr",)

    def __init__(self, expr: IfExpr | None = None) -> None:
        self.expr = expr

    def is_present(self) -> bool:
        """Is there a condition at all?"""
        return self.expr is not None

    def evaluate(self, defined: Set[str]) -> bool:
        """Is the condition true when exactly the symbols *defined* are set?

        An absent condition is always true.
        """
        return self.expr is None or _evaluate(self.expr, defined)

    def to_json(self) -> JSONValue | None:
        """The condition in schema syntax (``'A'``, ``{'all': [...]}``...)."""
        return None if self.expr is None else _to_json(self.expr)

    def to_c(self) -> str:
        """The condition as a C preprocessor expression."""
        if self.expr is None:
            return ""
        return _render(self.expr, "defined(%s)", "!%s", " && ", " || ", top=True)

    def __str__(self) -> str:
        """Human-readable form, e.g. ``CONFIG_A and (CONFIG_B or not CONFIG_C)``."""
        if self.expr is None:
            return ""
        return _render(self.expr, "%s", "not %s", " and ", " or ", top=True)

    def __repr__(self) -> str:
        return f"IfCond({self.expr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IfCond) and self.expr == other.expr

    def __hash__(self) -> int:
        return hash(self.expr)


def _evaluate(expr: IfExpr, defined: Set[str]) -> bool:
    if isinstance(expr, str):
        return expr in defined
    if isinstance(expr, IfNot):
        return not _evaluate(expr.operand, defined)
    if isinstance(expr, IfAll):
        return all(_evaluate(op, defined) for op in expr.operands)
    return any(_evaluate(op, defined) for op in expr.operands)


def _to_json(expr: IfExpr) -> JSONValue:
    if isinstance(expr, str):
        return expr
    if isinstance(expr, IfNot):
        return {"not": _to_json(expr.operand)}
    key = "all" if isinstance(expr, IfAll) else "any"
    return {key: [_to_json(op) for op in expr.operands]}


def _render(expr: IfExpr, sym: str, neg: str, and_: str, or_: str, top: bool) -> str:
    if isinstance(expr, str):
        return sym % expr
    if isinstance(expr, IfNot):
        return neg % _render(expr.operand, sym, neg, and_, or_, top=False)
    joiner = and_ if isinstance(expr, IfAll) else or_
    text = joiner.join(_render(op, sym, neg, and_, or_, top=False) for op in expr.operands)
    return text if top else f"({text})"


# Section: definitions


@attrs.define
class TypeRef:
    """A reference to a type by name; ``array`` for ``['Name']``."""

    name: str
    array: bool = False

    def __str__(self) -> str:
        return f"['{self.name}']" if self.array else f"'{self.name}'"


@attrs.define
class FeatureDef:
    name: str
    ifcond: IfCond = attrs.field(factory=IfCond)


@attrs.define
class EnumValueDef:
    name: str
    ifcond: IfCond = attrs.field(factory=IfCond)
    features: list[FeatureDef] = attrs.field(factory=list)


@attrs.define
class MemberDef:
    """An object member; ``name`` is without the ``*`` of optional members."""

    name: str
    type: TypeRef
    optional: bool = False
    ifcond: IfCond = attrs.field(factory=IfCond)
    features: list[FeatureDef] = attrs.field(factory=list)


@attrs.define
class BranchDef:
    """A union or alternate branch."""

    name: str
    type: TypeRef
    ifcond: IfCond = attrs.field(factory=IfCond)


@attrs.define
class IncludeDef:
    """Marks where an ``include`` directive was (``fname`` is joined onto the
    including file's directory)."""

    fname: str
    info: SourceInfo


@attrs.define
class Definition:
    """Fields common to all definitions; ``meta`` is the defining keyword."""

    meta: str
    name: str
    info: SourceInfo
    doc: DocBlock | None
    ifcond: IfCond
    features: list[FeatureDef]


@attrs.define
class EnumDef(Definition):
    values: list[EnumValueDef]
    prefix: str | None


@attrs.define
class StructDef(Definition):
    base: str | None
    members: list[MemberDef]


@attrs.define
class UnionDef(Definition):
    #: a type name, or the members of an anonymous base
    base: str | list[MemberDef]
    discriminator: str
    branches: list[BranchDef]


@attrs.define
class AlternateDef(Definition):
    branches: list[BranchDef]


@attrs.define
class CommandDef(Definition):
    #: ``None``, a type name (required when boxed), or anonymous members
    data: TypeRef | list[MemberDef] | None
    returns: TypeRef | None
    boxed: bool
    gen: bool
    success_response: bool
    allow_oob: bool
    allow_preconfig: bool
    coroutine: bool


@attrs.define
class EventDef(Definition):
    data: TypeRef | list[MemberDef] | None
    boxed: bool


# Section: names

# Optional downstream prefix __RFQDN_, optional experimental prefix x-, stem.
_VALID_NAME = re.compile(r"(__[a-z0-9.-]+_)?(x-)?([a-z][a-z0-9_-]*)$", re.IGNORECASE)
_NON_C = re.compile(r"[^A-Za-z0-9_]")
_CAMEL = re.compile(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")
_IF_SYMBOL = re.compile(r"[A-Z][A-Z0-9_]*")

_META_KEYS = ("enum", "struct", "union", "alternate", "command", "event")


def c_name(name: str) -> str:
    """Map *name* to the identifier QEMU's C code would use (for clash
    detection: ``a-b`` and ``a_b`` end up the same)."""
    return _NON_C.sub("_", name)


def _require_str_name(name: JSONValue, info: SourceInfo, source: str) -> str:
    if not isinstance(name, str):
        raise QAPISemError(info, f"{source} requires a string name")
    return name


def _check_name(name: str, info: SourceInfo, source: str) -> str:
    """Check the general name rules and return the stem (without prefixes)."""
    match = _VALID_NAME.match(name)
    if not match or c_name(name).startswith("q_"):
        raise QAPISemError(
            info,
            f"{source} has an invalid name: use ASCII letters, digits, '-' and "
            f"'_', starting with a letter (after an optional 'x-' or '__RFQDN_' "
            f"prefix); names starting with 'q_' or 'q-' are reserved",
        )
    return match.group(3)


def _check_name_upper(name: str, info: SourceInfo, source: str) -> None:
    stem = _check_name(name, info, source)
    if re.search(r"[a-z-]", stem):
        raise QAPISemError(
            info,
            f"name of {source} must not use lowercase or '-' (write it like 'BLOCK_JOB_COMPLETED')",
        )


def _check_name_lower(
    name: str,
    info: SourceInfo,
    source: str,
    permit_upper: bool = False,
    permit_underscore: bool = False,
) -> None:
    stem = _check_name(name, info, source)
    if (not permit_upper and re.search(r"[A-Z]", stem)) or (not permit_underscore and "_" in stem):
        raise QAPISemError(
            info,
            f"name of {source} must not use uppercase or '_' (write it like 'node-name')",
        )


def _check_name_camel(name: str, info: SourceInfo, source: str) -> None:
    stem = _check_name(name, info, source)
    if not _CAMEL.match(stem):
        raise QAPISemError(
            info, f"name of {source} must use CamelCase (write it like 'BlockJobInfo')"
        )


def _check_defn_name(name: str, info: SourceInfo, meta: str) -> None:
    if meta == "event":
        _check_name_upper(name, info, meta)
    elif meta == "command":
        _check_name_lower(
            name,
            info,
            meta,
            permit_underscore=name in info.pragma.command_name_exceptions,
        )
    else:
        _check_name_camel(name, info, meta)
        if name.endswith("List"):
            raise QAPISemError(
                info, f"{meta} name should not end in 'List' (reserved for array types)"
            )


# Section: generic checks


def _check_keys(
    value: JSONObject,
    info: SourceInfo,
    source: str,
    required: Collection[str],
    optional: Collection[str],
) -> None:
    def listing(keys: Iterable[str]) -> str:
        return ", ".join(f"'{k}'" for k in sorted(keys))

    missing = set(required) - value.keys()
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise QAPISemError(info, f"{source} lacks required key{plural} {listing(missing)}")
    allowed = set(required) | set(optional)
    unknown = value.keys() - allowed
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise QAPISemError(
            info,
            f"{source} has unknown key{plural} {listing(unknown)}\n"
            f"Valid keys are {listing(allowed)}.",
        )


def _check_flags(expr: JSONObject, info: SourceInfo) -> None:
    for key in ("gen", "success-response"):
        if key in expr and expr[key] is not False:
            raise QAPISemError(info, f"flag '{key}' may only use false value (omit it for true)")
    for key in ("boxed", "allow-oob", "allow-preconfig", "coroutine"):
        if key in expr and expr[key] is not True:
            raise QAPISemError(info, f"flag '{key}' may only use true value (omit it for false)")
    if "allow-oob" in expr and "coroutine" in expr:
        raise QAPISemError(info, "flags 'allow-oob' and 'coroutine' are incompatible; drop one")


def _check_if(value: JSONObject, info: SourceInfo, source: str) -> IfCond:
    """Check and convert the optional ``'if'`` key of *value*."""

    def convert(cond: JSONValue) -> IfExpr:
        if isinstance(cond, str):
            if not _IF_SYMBOL.fullmatch(cond):
                raise QAPISemError(
                    info,
                    f"'if' condition '{cond}' of {source} is not a valid identifier "
                    f"(conditions name configuration symbols like 'CONFIG_LINUX')",
                )
            return cond
        if not isinstance(cond, dict):
            raise QAPISemError(
                info,
                f"'if' condition of {source} must be a string or an object "
                f"with key 'all', 'any' or 'not'",
            )
        _check_keys(cond, info, f"'if' condition of {source}", [], ["all", "any", "not"])
        if len(cond) != 1:
            raise QAPISemError(
                info,
                f"'if' condition of {source} has conflicting keys; "
                f"combine them with 'all' or 'any'",
            )
        if "not" in cond:
            return IfNot(convert(cond["not"]))
        operator = "all" if "all" in cond else "any"
        operands = cond[operator]
        if not isinstance(operands, list):
            raise QAPISemError(info, f"'{operator}' condition of {source} must be an array")
        if not operands:
            raise QAPISemError(info, f"'if' condition [] of {source} is useless; drop it")
        converted = tuple(convert(op) for op in operands)
        return IfAll(converted) if operator == "all" else IfAny(converted)

    cond = value.get("if")
    if cond is None:
        return IfCond()
    return IfCond(convert(cond))


def _check_features(features: JSONValue | None, info: SourceInfo) -> list[FeatureDef]:
    if features is None:
        return []
    if not isinstance(features, list):
        raise QAPISemError(info, "'features' must be an array")
    result: list[FeatureDef] = []
    for feat in features:
        if not isinstance(feat, dict):
            feat = {"name": feat}
        source = "'features' member"
        _check_keys(feat, info, source, ["name"], ["if"])
        name = _require_str_name(feat["name"], info, source)
        source = f"{source} '{name}'"
        _check_name_lower(name, info, source)
        result.append(FeatureDef(name, _check_if(feat, info, source)))
    return result


def _type_ref(
    value: JSONValue, info: SourceInfo, source: str, allow_array: bool = False
) -> TypeRef:
    """Check a type reference that must not be an anonymous object."""
    if isinstance(value, str):
        return TypeRef(value)
    if isinstance(value, list):
        if not allow_array:
            raise QAPISemError(info, f"{source} cannot be an array")
        if len(value) != 1 or not isinstance(value[0], str):
            raise QAPISemError(
                info,
                f"{source}: array type must contain single type name, like ['str']",
            )
        return TypeRef(value[0], array=True)
    raise QAPISemError(info, f"{source} should be a type name")


def _type_or_members(
    value: JSONValue, info: SourceInfo, source: str, owner: str | None
) -> TypeRef | list[MemberDef]:
    """Check a type reference that may be an anonymous object (members).

    *owner* names the struct or union whose member names may be exempted
    by pragma 'member-name-exceptions'; ``None`` when no exemption applies.
    """
    if isinstance(value, str | list):
        return _type_ref(value, info, source)
    if not isinstance(value, dict):
        raise QAPISemError(info, f"{source} should be an object or type name")
    permissive = owner is not None and owner in info.pragma.member_name_exceptions
    members: list[MemberDef] = []
    for key, arg in value.items():
        key_source = f"{source} member '{key}'"
        optional = key.startswith("*")
        name = key[1:] if optional else key
        _check_name_lower(
            name, info, key_source, permit_upper=permissive, permit_underscore=permissive
        )
        cname = c_name(name)
        if cname == "u" or cname.startswith("has_"):
            raise QAPISemError(
                info,
                f"{key_source} uses reserved name (names 'u' and 'has-*' are "
                f"reserved by the C mapping)",
            )
        if not isinstance(arg, dict):
            arg = {"type": arg}
        _check_keys(arg, info, key_source, ["type"], ["if", "features"])
        ifcond = _check_if(arg, info, key_source)
        features = _check_features(arg.get("features"), info)
        typ = _type_ref(arg["type"], info, key_source, allow_array=True)
        members.append(MemberDef(name, typ, optional, ifcond, features))
    return members


def _branches(
    data: JSONObject, info: SourceInfo, allow_array: bool, check_names: bool
) -> list[BranchDef]:
    branches: list[BranchDef] = []
    for key, value in data.items():
        source = f"'data' member '{key}'"
        if check_names:
            _check_name_lower(key, info, source)
        if not isinstance(value, dict):
            value = {"type": value}
        _check_keys(value, info, source, ["type"], ["if"])
        ifcond = _check_if(value, info, source)
        typ = _type_ref(value["type"], info, source, allow_array=allow_array)
        branches.append(BranchDef(key, typ, ifcond))
    return branches


# Section: per-meta checks


def _check_enum(
    expr: JSONObject, info: SourceInfo, name: str
) -> tuple[list[EnumValueDef], str | None]:
    data = expr["data"]
    prefix = expr.get("prefix")
    if not isinstance(data, list):
        raise QAPISemError(info, "'data' must be an array of value names")
    if prefix is not None and not isinstance(prefix, str):
        raise QAPISemError(info, "'prefix' must be a string")
    permissive = name in info.pragma.member_name_exceptions
    values: list[EnumValueDef] = []
    for value in data:
        if not isinstance(value, dict):
            value = {"name": value}
        source = "'data' member"
        _check_keys(value, info, source, ["name"], ["if", "features"])
        vname = _require_str_name(value["name"], info, source)
        source = f"{source} '{vname}'"
        # Enum values may start with a digit: check them as if they didn't.
        checked = "d" + vname if vname[:1].isdigit() else vname
        _check_name_lower(
            checked, info, source, permit_upper=permissive, permit_underscore=permissive
        )
        ifcond = _check_if(value, info, source)
        features = _check_features(value.get("features"), info)
        values.append(EnumValueDef(vname, ifcond, features))
    return values, prefix


def check_exprs(exprs: list[ParsedExpr]) -> list[Definition | IncludeDef]:
    """Check parsed expressions one by one and return their definitions.

    :raise QAPISemError: on the first expression that breaks a rule.
    """
    result: list[Definition | IncludeDef] = []
    for parsed in exprs:
        expr, info = parsed.expr, parsed.info
        if "include" in expr:
            fname = expr["include"]
            assert isinstance(fname, str)
            result.append(IncludeDef(fname, info))
            continue
        result.append(_check_definition(expr, info, parsed.doc))
    return result


def _check_definition(expr: JSONObject, info: SourceInfo, doc: DocBlock | None) -> Definition:
    metas = [key for key in _META_KEYS if key in expr]
    if len(metas) != 1:
        raise QAPISemError(
            info,
            "expression must have exactly one key 'enum', 'struct', 'union', "
            "'alternate', 'command', 'event'",
        )
    meta = metas[0]
    name = _require_str_name(expr[meta], info, f"'{meta}'")
    info.set_defn(meta, name)
    _check_defn_name(name, info, meta)

    if doc is not None:
        if doc.symbol != name:
            raise QAPISemError(
                info,
                f"documentation comment is for '{doc.symbol}', but the definition is '{name}'",
            )
        doc.check_expr(meta)
    elif info.pragma.doc_required:
        raise QAPISemError(info, "documentation comment required (pragma 'doc-required' is set)")

    defn: Definition
    if meta == "enum":
        _check_keys(expr, info, meta, ["enum", "data"], ["if", "features", "prefix"])
        values, prefix = _check_enum(expr, info, name)
        defn = EnumDef(meta, name, info, doc, IfCond(), [], values, prefix)
    elif meta == "union":
        _check_keys(
            expr, info, meta, ["union", "base", "discriminator", "data"], ["if", "features"]
        )
        base_value = expr["base"]
        base = _type_or_members(base_value, info, "'base'", owner=name)
        discriminator = _require_str_name(expr["discriminator"], info, "'discriminator'")
        data = expr["data"]
        if not isinstance(data, dict):
            raise QAPISemError(info, "'data' must be an object mapping branch names to types")
        # An empty base (falsy in QEMU's eyes) permits array branches; the
        # schema check then fails on the discriminator anyway.
        branches = _branches(data, info, allow_array=not base_value, check_names=False)
        defn = UnionDef(
            meta,
            name,
            info,
            doc,
            IfCond(),
            [],
            base.name if isinstance(base, TypeRef) else base,
            discriminator,
            branches,
        )
    elif meta == "alternate":
        _check_keys(expr, info, meta, ["alternate", "data"], ["if", "features"])
        data = expr["data"]
        if not data:
            raise QAPISemError(info, "'data' must not be empty")
        if not isinstance(data, dict):
            raise QAPISemError(info, "'data' must be an object mapping branch names to types")
        branches = _branches(data, info, allow_array=True, check_names=True)
        defn = AlternateDef(meta, name, info, doc, IfCond(), [], branches)
    elif meta == "struct":
        _check_keys(expr, info, meta, ["struct", "data"], ["base", "if", "features"])
        members = _type_or_members(expr["data"], info, "'data'", owner=name)
        base_ref = None
        if "base" in expr:
            base_ref = _type_ref(expr["base"], info, "'base'")
        if isinstance(members, TypeRef):
            # A struct's 'data' must spell out its members.
            raise QAPISemError(info, "'data' should be an object")
        defn = StructDef(
            meta, name, info, doc, IfCond(), [], base_ref.name if base_ref else None, members
        )
    elif meta == "command":
        _check_keys(
            expr,
            info,
            meta,
            ["command"],
            [
                "data",
                "returns",
                "boxed",
                "if",
                "features",
                "gen",
                "success-response",
                "allow-oob",
                "allow-preconfig",
                "coroutine",
            ],
        )
        args = _check_args(expr, info)
        rets = expr.get("returns")
        returns = None if rets is None else _type_ref(rets, info, "'returns'", allow_array=True)
        defn = CommandDef(
            meta,
            name,
            info,
            doc,
            IfCond(),
            [],
            args,
            returns,
            boxed=expr.get("boxed") is True,
            gen=expr.get("gen", True) is not False,
            success_response=expr.get("success-response", True) is not False,
            allow_oob=expr.get("allow-oob") is True,
            allow_preconfig=expr.get("allow-preconfig") is True,
            coroutine=expr.get("coroutine") is True,
        )
    else:
        assert meta == "event"
        _check_keys(expr, info, meta, ["event"], ["data", "boxed", "if", "features"])
        args = _check_args(expr, info)
        defn = EventDef(meta, name, info, doc, IfCond(), [], args, boxed=expr.get("boxed") is True)

    defn.ifcond = _check_if(expr, info, meta)
    defn.features = _check_features(expr.get("features"), info)
    _check_flags(expr, info)
    return defn


def _check_args(expr: JSONObject, info: SourceInfo) -> TypeRef | list[MemberDef] | None:
    """The 'data' of a command or event."""
    args = expr.get("data")
    boxed = bool(expr.get("boxed", False))
    if boxed and args is None:
        raise QAPISemError(info, "'boxed': true requires 'data' (a type name)")
    if args is None:
        return None
    if boxed:
        if isinstance(args, dict):
            raise QAPISemError(info, "'data' should be a type name when 'boxed': true")
        return _type_ref(args, info, "'data'")
    return _type_or_members(args, info, "'data'", owner=None)

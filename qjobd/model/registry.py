"""The model of one schema: per-command and per-event conversion, ready for dispatch.

Build it once at start-up::

    model = Model(schema, defined={"CONFIG_LINUX"})

and use it for every request::

    try:
        args = model.structure_args(call.command, call.arguments)  # None if absent
    except ArgumentError as exc:        # exc.desc is QEMU's text, class GenericError
        ...
    result = await handler(ctx, args)   # args: an attrs instance, or None
    reply = model.unstructure_return(call.command, result)   # {} when no 'returns'

    data = model.event_data("JOB_STATUS_CHANGE", {"id": "j", "status": "running"})

**Handlers** receive the structured argument object: for ordinary commands an instance
of the implicit argument class (``job-pause`` -> ``JobPauseArgs`` with attribute
``id``), for ``boxed`` commands an instance of the boxed type itself (for
``blockdev-add`` a ``BlockdevOptions`` union), and None for commands without
arguments.  So a handler reads ``async def job_pause(ctx, args) -> None`` and uses
``args.id``.  Classes are reachable by Python name (``model.py.JobInfo``) or QAPI
name (``model.types["JobInfo"]``), e.g. to build return values; handlers that prefer
keyword parameters can be called with ``**model.kwargs(args)``.

Two things dispatch must keep: ``arguments`` must be the dict decoded from the JSON
text with its keys in text order (the order decides which of several unexpected keys
is named, as in QEMU), and the model's entry points should be used rather than
``CommandInfo.structure`` directly when requests may be nested deeper than about 300
levels (the entry points retry such requests with a higher recursion limit).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs
import cattrs

from qjobd.qapi.schema import Command, Entity, Event, Schema, Type

from .build import EnumNode, Node, ObjectNode, QAPIEnum, QAPIStruct, TypeBuilder
from .convert import Conversions, _no_args
from .errors import ArgumentError, ModelError
from .keyval_input import visit_keyval
from .naming import camel_case

__all__ = ["CommandInfo", "EventInfo", "Model"]


#: Python frames allowed while converting deeply nested values.  QEMU's JSON parser
#: accepts 1023 levels of nesting and its visitors recurse as deep; the generated
#: converters use up to three Python frames per level, more than Python's default
#: limit of 1000 allows.  Only a request that hits the limit pays for raising it.
DEEP_RECURSION_LIMIT: Final = 12000


def _deep(fn: Callable[[Any], Any], value: Any) -> Any:
    """Run ``fn(value)`` again with room for :data:`DEEP_RECURSION_LIMIT` frames."""
    old = sys.getrecursionlimit()
    if old >= DEEP_RECURSION_LIMIT:
        raise RecursionError("value nested too deeply")
    sys.setrecursionlimit(DEEP_RECURSION_LIMIT)
    try:
        return fn(value)
    finally:
        sys.setrecursionlimit(old)


def _empty_return(_value: Any) -> dict[str, Any]:
    return {}


def _no_data(_value: Any) -> None:
    return None


@attrs.frozen
class CommandInfo:
    """Everything dispatch needs to know about one command."""

    name: str
    #: Class of the structured arguments; None when the command takes none.
    arg_type: type[QAPIStruct] | None
    boxed: bool
    allow_oob: bool
    success_response: bool
    allow_preconfig: bool
    coroutine: bool
    #: Feature names (e.g. ``deprecated``, ``unstable``).
    features: tuple[str, ...]
    #: ``f(arguments_dict)`` -> argument object (or None); raises ArgumentError.
    structure: Callable[[dict[str, Any]], Any] = attrs.field(repr=False)
    #: ``f(value)`` -> the JSON-ready ``return`` member ({} without 'returns').
    unstructure_return: Callable[[Any], Any] = attrs.field(repr=False)


@attrs.frozen
class EventInfo:
    """Everything the event emitter needs to know about one event."""

    name: str
    #: Class of the event data; None when the event carries none.
    data_type: type[QAPIStruct] | None
    boxed: bool
    features: tuple[str, ...]
    #: ``f(data)`` -> the JSON-ready ``data`` member, or None to leave it out.
    unstructure: Callable[[Any], Any] = attrs.field(repr=False)
    #: ``f(dict)`` -> the data object; raises ArgumentError when it does not fit.
    structure: Callable[[dict[str, Any]], Any] = attrs.field(repr=False)


def _features(entity: Entity) -> tuple[str, ...]:
    return tuple(f.name for f in entity.features)


class Model:
    """Runtime types and converters for every live command, event and type of a schema.

    :param schema: a checked ``qjobd.qapi.schema.Schema``.
    :param defined: configuration symbols for which ``if`` conditions hold; entities,
        members, enum values and branches whose condition fails do not exist.
    """

    def __init__(self, schema: Schema, defined: Iterable[str] = ()) -> None:
        builder = TypeBuilder(defined)
        commands = [c for c in schema.commands() if builder.live(c)]
        events = [e for e in schema.events() if builder.live(e)]
        for cmd in commands:
            if cmd.arg_type is not None and cmd.arg_type.is_implicit():
                builder.hint_name(cmd.arg_type.name, camel_case(cmd.name) + "Args")
        for ev in events:
            if ev.arg_type is not None and ev.arg_type.is_implicit():
                builder.hint_name(ev.arg_type.name, camel_case(ev.name) + "Data")
        for cmd in commands:
            for t in (cmd.arg_type, cmd.ret_type):
                if t is not None:
                    builder.node(t)
        for ev in events:
            if ev.arg_type is not None:
                builder.node(ev.arg_type)
        for qtype in schema.types():
            if builder.live(qtype) and qtype.name != "q_empty":
                builder.node(qtype)
        builder.finish()
        self.defined = builder.defined
        self._nodes: dict[str, Node] = builder.nodes
        self._conv = Conversions(builder.nodes)
        #: The project's one converter; hooks for every generated class and enum.
        self.converter: cattrs.Converter = self._conv.converter
        #: Generated classes and enums by QAPI name.
        self.types: dict[str, type[Any]] = {}
        #: The same by Python name: ``model.py.JobInfo``.
        self.py = types.SimpleNamespace()
        self._fill_types()
        self.commands: dict[str, CommandInfo] = {c.name: self._command(c) for c in commands}
        self.events: dict[str, EventInfo] = {e.name: self._event(e) for e in events}

    def _fill_types(self) -> None:
        """Fill ``types`` and ``py``; on a Python name clash explicit types win."""
        implicit: list[type[Any]] = []
        for name, node in self._nodes.items():
            if isinstance(node, ObjectNode | EnumNode):
                self.types[name] = node.py_type
                if name.startswith("q_"):
                    implicit.append(node.py_type)
                else:
                    self._add_py(node.py_type)
        for cls in implicit:
            self._add_py(cls)

    def _add_py(self, cls: type[Any]) -> None:
        if not hasattr(self.py, cls.__name__):
            setattr(self.py, cls.__name__, cls)

    def _node(self, qtype: Type) -> Node:
        return self._nodes[qtype.name]

    def _command(self, cmd: Command) -> CommandInfo:
        arg_cls: type[QAPIStruct] | None = None
        structure: Callable[[dict[str, Any]], Any] = _no_args
        if cmd.arg_type is not None:
            node = self._node(cmd.arg_type)
            if not isinstance(node, ObjectNode):
                raise ModelError(f"command {cmd.name}: arguments are not an object")
            if cmd.boxed or node.members or node.is_union:
                arg_cls = node.py_type
                structure = self._conv.object_visitor(node)
        ret: Callable[[Any], Any] = _empty_return
        if cmd.ret_type is not None:
            ret = self._conv.unstructurer(self._node(cmd.ret_type))
        return CommandInfo(
            name=cmd.name,
            arg_type=arg_cls,
            boxed=cmd.boxed,
            allow_oob=cmd.allow_oob,
            success_response=cmd.success_response,
            allow_preconfig=cmd.allow_preconfig,
            coroutine=cmd.coroutine,
            features=_features(cmd),
            structure=structure,
            unstructure_return=ret,
        )

    def _event(self, ev: Event) -> EventInfo:
        data_cls: type[QAPIStruct] | None = None
        unstructure: Callable[[Any], Any] = _no_data
        structure: Callable[[dict[str, Any]], Any] = _no_args
        if ev.arg_type is not None:
            node = self._node(ev.arg_type)
            if not isinstance(node, ObjectNode):
                raise ModelError(f"event {ev.name}: data is not an object")
            if ev.boxed or node.members or node.is_union:
                data_cls = node.py_type
                unstructure = self._conv.unstructurer(node)
                structure = self._conv.object_visitor(node)
        return EventInfo(
            name=ev.name,
            data_type=data_cls,
            boxed=ev.boxed,
            features=_features(ev),
            unstructure=unstructure,
            structure=structure,
        )

    # Section: the calls dispatch makes

    def structure_args(self, command: str, arguments: Mapping[str, Any] | None) -> Any:
        """Structure a request's ``arguments`` (None when the member was absent).

        :raises KeyError: unknown command (dispatch checks that first).
        :raises ArgumentError: bad arguments, with QEMU's text.
        """
        info = self.commands[command]
        if arguments is None:
            arguments = {}
        elif not isinstance(arguments, dict):
            if not isinstance(arguments, Mapping):
                raise ArgumentError("QMP input member 'arguments' must be an object")
            arguments = dict(arguments)
        try:
            return info.structure(arguments)
        except RecursionError:
            return _deep(info.structure, arguments)

    def unstructure_return(self, command: str, value: Any) -> Any:
        """The ``return`` member for a handler's result."""
        fn = self.commands[command].unstructure_return
        try:
            return fn(value)
        except RecursionError:
            return _deep(fn, value)

    def unstructure_event(self, event: str, data: Any) -> Any:
        """The ``data`` member of an event, or None when the event has none."""
        fn = self.events[event].unstructure
        try:
            return fn(data)
        except RecursionError:
            return _deep(fn, data)

    def event_data(self, event: str, data: Mapping[str, Any] | None) -> Any:
        """The ``data`` member of ``event`` built from ``data`` through the event's
        schema type (None when the event has none).

        :raises ModelError: unknown event, or ``data`` does not fit its type: a bug
            in whoever emits it, never the client's doing.
        """
        info = self.events.get(event)
        if info is None:
            raise ModelError(f"event {event} is not in the schema")
        try:
            return info.unstructure(info.structure(dict(data or {})))
        except ArgumentError as error:
            raise ModelError(f"event {event}: {error.desc}") from error

    # Section: helpers for handlers and tests

    def structure(self, qapi_type: str, value: Any) -> Any:
        """Structure a top-level value of any QAPI type (errors name it ``<anonymous>``)."""
        fn = self._conv.structurer(self._nodes[qapi_type])
        try:
            return fn(value)
        except RecursionError:
            return _deep(fn, value)

    def from_keyval(self, qapi_type: str, tree: dict[str, Any]) -> Any:
        """The JSON value of a parsed keyval option (``--blockdev driver=file,...``)
        read as ``qapi_type``, converting its strings as QEMU's keyval visitor does.

        :raises ArgumentError: with the keyval visitor's text.
        """
        return visit_keyval(self._nodes[qapi_type], tree)

    def unstructure(self, qapi_type: str, value: Any) -> Any:
        """Unstructure a value of any QAPI type to JSON-ready data."""
        fn = self._conv.unstructurer(self._nodes[qapi_type])
        try:
            return fn(value)
        except RecursionError:
            return _deep(fn, value)

    @staticmethod
    def kwargs(args: QAPIStruct | None) -> dict[str, Any]:
        """``{attribute: value}`` of an argument object, for keyword-style handlers."""
        if args is None:
            return {}
        cls: Any = type(args)
        return {a.name: getattr(args, a.name) for a in attrs.fields(cls)}

    def enum(self, qapi_name: str) -> type[QAPIEnum]:
        """The generated enum for ``qapi_name``."""
        cls = self.types[qapi_name]
        assert issubclass(cls, QAPIEnum)
        return cls

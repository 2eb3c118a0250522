"""One client's QMP conversation, as pure logic: bytes in, decisions out.

The session knows the rules of the wire (QEMU's ``monitor/qmp.c``,
``qapi/qmp-dispatch.c``) but runs no command itself.  The trio edge feeds it bytes,
gets back the decoded requests and has each classified, in turn, into either a ready
:class:`Reply` (a request that failed before reaching a handler) or a :class:`Call`
that names the command, its raw arguments and the ``id`` to echo.  The edge runs the
handler and asks the session to turn the outcome into a reply with
:meth:`Session.reply_for` / :meth:`Session.error_for`.  Keeping the rules here lets
tests check every error string without a socket.

States: a session starts in *capabilities negotiation*, where only
``qmp_capabilities`` exists (anything else is answered "Expecting capabilities
negotiation with 'qmp_capabilities'"), and moves to *command mode* when that command
succeeds.  Only sessions in command mode receive events.

Some commands always return the same thing (``query-qmp-schema``: a 40 KB answer that
costs milliseconds to build and encode).  A :class:`ReplyCache` shared by the sessions
of one daemon keeps the encoded ``return`` member of such commands, so the edge can
answer them with :meth:`Session.cached_reply` without running the handler again.  The
cached reply is spliced from that text and the encoded ``id``, in QEMU's member order,
so it is byte for byte what encoding the whole reply would give.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import attrs

from qjobd import qjson
from qjobd.protocol.jsonstream import JSONParseError, JSONStreamDecoder

__all__ = ["NEGOTIATION_COMMAND", "Call", "Reply", "ReplyCache", "Session"]

NEGOTIATION_COMMAND: Final = "qmp_capabilities"

#: What QEMU puts in place of any CommandNotFound text before negotiation.
EXPECTING_NEGOTIATION: Final = "Expecting capabilities negotiation with 'qmp_capabilities'"

_NO_ID: Final = object()


@attrs.define(slots=True)
class Call:
    """A well-formed request for a known command, ready for its handler."""

    command: str
    arguments: dict[str, Any]
    #: The request's ``id`` exactly as sent, or the private ``_NO_ID`` marker.
    id: Any
    oob: bool

    @property
    def has_id(self) -> bool:
        return self.id is not _NO_ID


@attrs.define(slots=True)
class Reply:
    """A message to send back as is (already encoded, without the line end)."""

    text: str


@attrs.define(slots=True)
class CommandSpec:
    """What the session needs to know about one command to route a request."""

    name: str
    allow_oob: bool = False
    success_response: bool = True


#: The order QEMU prints a success reply's members in (its QDict walking order).
_REPLY_ORDER: Final = qjson.qdict_order(("return", "id")) or ("return", "id")


def _success_text(return_text: str, request_id: Any) -> str:
    """``{"return": ..., "id": ...}`` from the encoded ``return`` member.

    JSON text composes: a value encodes the same alone as inside an object, and the
    members and separators around it hold nothing the encoder rewrites.  So this is
    exactly ``qjson.encode`` of the whole reply, without encoding the result again.
    """
    if request_id is _NO_ID:
        return '{"return": ' + return_text + "}"
    members = {"return": '"return": ' + return_text, "id": '"id": ' + qjson.encode(request_id)}
    return "{" + ", ".join(members[key] for key in _REPLY_ORDER) + "}"


class ReplyCache:
    """The encoded results of commands whose result never changes, for every session.

    :param commands: the commands whose result is the same on every call (and whose
        handler does nothing else); only calls without arguments are answered from
        the cache, so a call with bad arguments still gets its error.
    """

    def __init__(self, commands: Iterable[str]) -> None:
        self.commands = frozenset(commands)
        self._returns: dict[str, str] = {}

    def return_text(self, command: str, result: Any) -> str:
        """The encoded ``return`` member for ``result``, encoded on the first call only."""
        text = self._returns.get(command)
        if text is None:
            text = self._returns[command] = qjson.encode({} if result is None else result)
        return text

    def get(self, command: str) -> str | None:
        return self._returns.get(command)


def error_message(error_class: str, desc: str, request_id: Any = _NO_ID) -> str:
    reply: dict[str, Any] = {"error": {"class": error_class, "desc": desc}}
    if request_id is not _NO_ID:
        reply["id"] = request_id
    return qjson.encode(reply)


class Session:
    """The QMP state of one connection.

    :param commands: every command the daemon offers, by name.
    :param greeting: the ``QMP`` member of the greeting (version and capabilities).
    """

    def __init__(self, commands: dict[str, CommandSpec], greeting: dict[str, Any],
                 replies: ReplyCache | None = None) -> None:
        self._commands = commands
        self._greeting = greeting
        self._replies = replies
        self._decoder = JSONStreamDecoder()
        #: True once ``qmp_capabilities`` succeeded.
        self.negotiated = False
        #: True when the client enabled the ``oob`` capability.
        self.oob_enabled = False
        #: Every capability the client enabled.
        self.capabilities: frozenset[str] = frozenset()
        #: Seconds between two JOB_PROGRESS events about one job (x-qjobd-progress).
        self.progress_interval = 0.5
        #: The user id of the peer, when its socket tells (set by the edge).
        self.peer_uid: int | None = None

    # Section: talking

    def greeting_text(self) -> str:
        return qjson.encode({"QMP": self._greeting})

    def receive_data(self, data: bytes) -> list[Any]:
        """Decode ``data``: every complete request (or parse error) in it, in order.

        Pass each to :meth:`classify` only when the previous one has been run: how a
        request is treated depends on the commands before it (negotiation).
        """
        return self._decoder.feed(data)

    def receive_eof(self) -> list[Any]:
        return self._decoder.feed_eof()

    def complete_negotiation(self, capabilities: Iterable[str]) -> None:
        """Enter command mode with the capabilities the client asked for."""
        self.negotiated = True
        self.capabilities = frozenset(capabilities)
        self.oob_enabled = "oob" in self.capabilities

    def command_names(self) -> list[str]:
        """Commands this session can run now, as query-commands lists them."""
        if not self.negotiated:
            return [NEGOTIATION_COMMAND]
        return list(self._commands)

    # Section: replies

    def reply_for(self, call: Call, result: Any) -> Reply | None:
        """The success reply for ``call``; None for commands that send none."""
        spec = self._commands[call.command]
        if not spec.success_response:
            return None
        replies = self._replies
        if replies is not None and call.command in replies.commands and not call.arguments:
            return Reply(_success_text(replies.return_text(call.command, result), call.id))
        reply: dict[str, Any] = {"return": {} if result is None else result}
        if call.id is not _NO_ID:
            reply["id"] = call.id
        return Reply(qjson.encode(reply))

    def cached_reply(self, call: Call) -> Reply | None:
        """The reply to ``call`` from the reply cache; None when it must be run.

        A command is answered from the cache once it has run successfully, and only
        when it has no arguments to check.
        """
        replies = self._replies
        if replies is None or call.arguments or call.command not in replies.commands:
            return None
        text = replies.get(call.command)
        if text is None or not self._commands[call.command].success_response:
            return None
        return Reply(_success_text(text, call.id))

    def error_for(self, call: Call, error_class: str, desc: str) -> Reply:
        return Reply(self._error(error_class, desc, call.id))

    # Section: classification (QEMU's qmp_dispatch up to the handler call)

    def _error(self, error_class: str, desc: str, request_id: Any = _NO_ID) -> str:
        if not self.negotiated and error_class == "CommandNotFound":
            desc = EXPECTING_NEGOTIATION
        return error_message(error_class, desc, request_id)

    def classify(self, value: Any) -> Call | Reply:
        """Check one decoded request as QEMU does before dispatching it."""
        if isinstance(value, JSONParseError):
            return Reply(self._error("GenericError", value.message))
        if type(value) is not dict:
            return Reply(self._error("GenericError", "QMP input must be a JSON object"))
        request_id = value.get("id", _NO_ID)
        exec_key = None
        # QEMU walks the request's members in its hash-table order, which decides
        # which of two bad members is named.
        keys = tuple(value)
        for key in qjson.qdict_order(keys) or keys:
            member = value[key]
            if key == "execute" or (key == "exec-oob" and self.oob_enabled):
                if type(member) is not str:
                    return self._fail(f"QMP input member '{key}' must be a string", request_id)
                if exec_key is not None:
                    return self._fail(
                        f"QMP input member '{key}' clashes with '{exec_key}'", request_id
                    )
                exec_key = key
            elif key == "arguments":
                if type(member) is not dict:
                    return self._fail("QMP input member 'arguments' must be an object", request_id)
            elif key != "id":
                return self._fail(f"QMP input member '{key}' is unexpected", request_id)
        if exec_key is None:
            return self._fail("QMP input lacks member 'execute'", request_id)
        name = value[exec_key]
        oob = exec_key == "exec-oob"
        spec = self._commands.get(name)
        if spec is None or (not self.negotiated and name != NEGOTIATION_COMMAND):
            return Reply(
                self._error("CommandNotFound", f"The command {name} has not been found", request_id)
            )
        if oob and not spec.allow_oob:
            return self._fail(f"The command {name} does not support OOB", request_id)
        return Call(name, value.get("arguments", {}), request_id, oob)

    def _fail(self, desc: str, request_id: Any) -> Reply:
        return Reply(self._error("GenericError", desc, request_id))

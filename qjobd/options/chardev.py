"""``--chardev`` and ``--monitor``: which QMP monitors to serve, and where.

qemu-storage-daemon's monitors sit on character devices: ``--chardev
socket,id=c0,path=P,server=on,wait=off`` makes a listening Unix socket, ``--chardev
stdio,id=s`` is the process's stdin and stdout, and ``--monitor chardev=c0`` puts QMP
on one.  qjobd accepts the same words, checks them in QSD's order with QSD's
messages, and refuses with a clear message what it cannot do (other backends, TCP,
client sockets, ``wait=on``, pretty-printing).

``--chardev`` is parsed with the rules of QEMU's older option parser
(``util/qemu-option.c``): the first word without ``=`` is the backend, a bare ``key``
means ``key=on`` (and ``nokey`` ``key=off``, both with QEMU's deprecation warning),
``,,`` is a comma, unknown keys are refused.  ``--monitor`` is keyval
(:mod:`.keyval`) typed as QEMU's ``MonitorOptions``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import attrs

from qjobd.errors import QJobdError

from .keyval import KeyvalError, keyval_bool, parse_keyval

__all__ = ["Chardev", "ChardevError", "MonitorSetup", "parse_chardev"]


class ChardevError(QJobdError):
    """A bad ``--chardev`` or ``--monitor``; the message follows QSD's."""


#: Every key QEMU's chardev options know (``--chardev socket,help``), with whether
#: it is a boolean.  Anything else is an invalid parameter.
_KEYS: Final = {
    **dict.fromkeys(
        ("abstract", "append", "clipboard", "delay", "ipv4", "ipv6", "logappend", "mouse",
         "mux", "nodelay", "server", "signal", "telnet", "tight", "tn3270", "wait",
         "websocket"), True),
    **dict.fromkeys(
        ("backend", "chardev", "cols", "debug", "fd", "height", "host", "localaddr",
         "localport", "logfile", "name", "path", "port", "reconnect", "rows", "size",
         "tls-authz", "tls-creds", "to", "width"), False),
}

#: Backends QEMU has; qjobd serves QMP on ``socket`` and ``stdio`` only.
_BACKENDS: Final = ("pty", "udp", "memory", "file", "socket", "stdio", "ringbuf", "null",
                    "parallel", "pipe", "mux", "serial")

#: Keys qjobd honours per backend (with ``backend`` and ``id``).
_HONOURED: Final = {"socket": {"path", "server", "wait"}, "stdio": {"signal"}}

_IDENTIFIER: Final = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")


@attrs.frozen
class Chardev:
    """A character device qjobd will open: a listening Unix socket, or stdio."""

    id: str
    backend: str
    path: Path | None = None


def _pairs(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """QemuOpts' (key, value) pairs, and the deprecation warnings they earn."""
    pairs: list[tuple[str, str]] = []
    warnings: list[str] = []
    pos = 0
    first = True
    while pos < len(text):
        end = pos
        while end < len(text) and text[end] not in "=,":
            end += 1
        if end < len(text) and text[end] == "=":
            key, pos = text[pos:end], end + 1
            value, pos = _value(text, pos)
        elif first:
            key = "backend"
            value, pos = _value(text, pos)
        else:
            key, pos = text[pos:end], end + 1
            if key.startswith("no"):
                key, value, prefix = key[2:], "off", "no"
            else:
                value, prefix = "on", ""
            if key not in ("help", "?"):
                warnings.append(f"warning: short-form boolean option '{prefix}{key}' "
                                f"deprecated\nPlease use {key}={value} instead")
        pairs.append((key, value))
        first = False
    return pairs, warnings


def _value(text: str, pos: int) -> tuple[str, int]:
    chars: list[str] = []
    while pos < len(text):
        if text[pos] == ",":
            if text[pos + 1:pos + 2] != ",":
                return "".join(chars), pos + 1
            pos += 1
        chars.append(text[pos])
        pos += 1
    return "".join(chars), pos


def parse_chardev(text: str) -> tuple[Chardev, list[str]]:
    """The chardev ``text`` asks for, and warnings to print (QEMU's deprecations).

    :raise ChardevError: bad or unsupported options.
    """
    pairs, warnings = _pairs(text)
    ident = next((value for key, value in pairs if key == "id"), None)
    if ident is not None and not _IDENTIFIER.fullmatch(ident):
        raise ChardevError(
            "Parameter 'id' expects an identifier\n"
            "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.")
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in ("help", "?"):
            raise ChardevError("qjobd has no help for --chardev; see qjobd --help")
        if key == "id":
            continue
        if key not in _KEYS:
            raise ChardevError(f"Invalid parameter '{key}'")
        if _KEYS[key] and keyval_bool(value) is None:
            raise ChardevError(f"Parameter '{key}' expects 'on' or 'off'")
        options[key] = value
    if ident is None:
        raise ChardevError("chardev: no id specified")
    backend = options.pop("backend", None)
    if backend is None:
        raise ChardevError(f'chardev: "{ident}" missing backend')
    if backend not in _BACKENDS:
        raise ChardevError(f"'{backend}' is not a valid char driver name")
    if backend not in _HONOURED:
        raise ChardevError(f"chardev backend '{backend}' is not supported by qjobd "
                           "(only socket and stdio)")
    if backend == "socket" and not options.keys() & {"path", "host", "fd"}:
        raise ChardevError("Unable to parse FD number ")  # QEMU's words: no address at all
    for key in options:
        if key not in _HONOURED[backend] and not (key == "mux" and options[key] == "off"):
            raise ChardevError(f"chardev option '{key}' is not supported by qjobd")
    if backend == "stdio":
        return Chardev(ident, backend), warnings
    if not keyval_bool(options.get("server", "off")):
        raise ChardevError("qjobd supports only listening sockets: give server=on")
    if keyval_bool(options.get("wait", "on")):
        raise ChardevError("qjobd does not wait for a client before it starts: give wait=off")
    return Chardev(ident, backend, Path(options["path"])), warnings


@attrs.frozen
class _Monitor:
    chardev: str
    readline: bool
    pretty: bool


def _monitor_options(text: str) -> _Monitor:
    """``--monitor`` typed as ``MonitorOptions`` (id, mode, pretty, chardev)."""
    try:
        tree = parse_keyval(text, "chardev")
    except KeyvalError as error:
        raise ChardevError(str(error)) from error
    for key in ("id", "mode", "pretty", "chardev"):
        value = tree.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ChardevError(f"Parameters '{key}.*' are unexpected")
        if key == "mode" and value not in ("readline", "control"):
            raise ChardevError(f"Parameter 'mode' does not accept value '{value}'")
        if key == "pretty" and keyval_bool(value) is None:
            raise ChardevError("Parameter 'pretty' expects 'on' or 'off'")
    if "chardev" not in tree:
        raise ChardevError("Parameter 'chardev' is missing")
    unexpected = [key for key in tree if key not in ("id", "mode", "pretty", "chardev")]
    if unexpected:
        raise ChardevError(f"Parameter '{unexpected[0]}' is unexpected")
    return _Monitor(tree["chardev"], tree.get("mode") == "readline",
                    bool(keyval_bool(tree.get("pretty", "off"))))


class MonitorSetup:
    """The chardevs and monitors of one command line, checked as they come.

    QSD opens each chardev when it reads it, so a later option can only name an
    earlier one; :meth:`add_chardev` and :meth:`add_monitor` keep that order.

    :param daemonize: ``--daemonize`` was given (stdio is then refused).
    """

    def __init__(self, *, daemonize: bool) -> None:
        self._daemonize = daemonize
        self.chardevs: dict[str, Chardev] = {}
        #: Chardevs that carry a monitor, in the order of the ``--monitor`` options.
        self.monitors: list[Chardev] = []

    def add_chardev(self, text: str) -> tuple[Chardev, list[str]]:
        """Check ``--chardev text``; the chardev (to open now) and warnings.

        :raise ChardevError: as QSD would refuse it, or qjobd cannot serve it.
        """
        chardev, warnings = parse_chardev(text)
        if chardev.id in self.chardevs:
            if chardev.backend == "socket":
                raise ChardevError("duplicate yank instance")
            raise ChardevError(
                f"attempt to add duplicate property '{chardev.id}' to object (type 'container')")
        if chardev.backend == "stdio":
            if self._daemonize:
                raise ChardevError("cannot use stdio with -daemonize")
            if any(other.backend == "stdio" for other in self.chardevs.values()):
                raise ChardevError("cannot use stdio by multiple character devices")
        self.chardevs[chardev.id] = chardev
        return chardev, warnings

    def add_monitor(self, text: str) -> Chardev:
        """Check ``--monitor text``; the chardev it puts QMP on.

        :raise ChardevError: as QSD would refuse it, or qjobd cannot serve it.
        """
        monitor = _monitor_options(text)
        chardev = self.chardevs.get(monitor.chardev)
        if chardev is None:
            raise ChardevError(f'chardev "{monitor.chardev}" not found')
        if monitor.readline:
            raise ChardevError("Only QMP is supported")
        if chardev in self.monitors:
            raise ChardevError(f"Device '{chardev.id}' is in use")
        if monitor.pretty:
            raise ChardevError("qjobd does not pretty-print QMP: leave out pretty=on")
        self.monitors.append(chardev)
        return chardev


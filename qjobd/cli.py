"""``qjobd``: the daemon's command line.

Two forms, freely mixed.  qjobd's own short form is ``qjobd [--socket PATH]``.  The
other is qemu-storage-daemon's (so scripts written for QSD run with ``qjobd`` in its
place): ``--blockdev``, ``--chardev``, ``--monitor``, ``--pidfile``, ``--daemonize``,
``-h``, ``-V``, scanned (:mod:`qjobd.options.getopt`) and processed as QSD does:

1. a first pass over the settings: help, version, mistakes in the command line
   itself (exit 1), ``--daemonize`` (fork now), ``--pidfile``, ``--log-level``;
2. then the ordered options one by one, each failing with ``qjobd: <option as
   written>: <message>`` and exit status 1 (``--blockdev`` adds its node now, a
   ``--chardev`` socket listens now, a ``--monitor`` may only name an earlier
   chardev);
3. the PID file, the daemonized parent's exit, serving, and ``READY=1`` to systemd.

Monitors: one per ``--monitor``, ``--socket``, and socket passed by systemd socket
activation; with none of those, qjobd listens on its default socket path.  QSD's
options that qjobd cannot honour (exports, the NBD server, objects, tracing) are
refused by name.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Final

import attrs
import trio

from qjobd import __version__
from qjobd.errors import QMPError
from qjobd.model.errors import ArgumentError
from qjobd.options.chardev import ChardevError, MonitorSetup
from qjobd.options.getopt import OPTIONS, UNEXPECTED, Item, Option, scan
from qjobd.options.keyval import KeyvalError, parse_keyval
from qjobd.protocol.jsonstream import JSONParseError, JSONStreamDecoder
from qjobd.qapi.error import QAPIError
from qjobd.server.connection import StdioChannel
from qjobd.server.daemon import Daemon, Listener
from qjobd.server.listener import (
    ActivatedListener,
    StartupError,
    UnixListener,
    default_history_path,
    default_socket_path,
    open_unix_listener,
)
from qjobd.server.process import Daemonizer, PidFile
from qjobd.server.systemd import listen_sockets, notify

__all__ = ["main"]

logger = logging.getLogger("qjobd")

LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


class OptionFailed(Exception):
    """One option cannot be honoured; the message follows ``<location>: ``."""


def _help() -> str:
    lines = [
        "Usage: qjobd [options]",
        "Run disk jobs (backup, mirror, commit, stream, snapshots) driven over QMP.",
        "Accepts qemu-storage-daemon's command line for what qjobd does.",
        "",
    ]
    for option in OPTIONS:
        names = f"-{option.short}, --{option.name}" if option.short else f"    --{option.name}"
        if option.metavar:
            names += f" {option.metavar}"
        lines.append(f"  {names:<28} {option.help}")
    lines += [
        "",
        f"With no --monitor, --socket or socket from systemd, qjobd listens on "
        f"{default_socket_path()}.",
    ]
    return "\n".join(lines)


@attrs.define
class Startup:
    """What the ordered options built, to be served."""

    daemon: Daemon
    monitors: MonitorSetup
    #: Listening sockets by chardev id (those without a monitor are held, not served).
    sockets: dict[str, UnixListener] = attrs.Factory(dict)

    def served(self) -> tuple[list[Listener], StdioChannel | None]:
        listeners: list[Listener] = []
        stdio = None
        for chardev in self.monitors.monitors:
            if chardev.backend == "stdio":
                stdio = StdioChannel()
            else:
                listeners.append(self.sockets[chardev.id])
        return listeners, stdio


def _json_options(text: str) -> object:
    """``--blockdev {...}``: one JSON object, parse errors worded as QEMU's."""
    decoder = JSONStreamDecoder()
    values = decoder.feed(text.encode())
    if not values:
        raise OptionFailed("JSON parse error, premature EOI")
    if isinstance(values[0], JSONParseError):
        raise OptionFailed(values[0].message)
    if len(values) > 1 or decoder.buffered:
        raise OptionFailed("Expecting at most one JSON value")
    return values[0]


async def _blockdev(startup: Startup, text: str) -> None:
    daemon = startup.daemon
    try:
        if text.startswith("{"):
            options = _json_options(text)
        else:
            options = daemon.model.from_keyval("BlockdevOptions", parse_keyval(text, "driver"))
        daemon.add_blockdev(options)
    except (KeyvalError, ArgumentError) as error:
        raise OptionFailed(str(error)) from error
    except QMPError as error:
        hint = f"\n{error.hint}" if error.hint else ""
        raise OptionFailed(error.desc + hint) from error


async def _chardev(startup: Startup, text: str) -> None:
    try:
        chardev, warnings = startup.monitors.add_chardev(text)
    except ChardevError as error:
        raise OptionFailed(str(error)) from error
    for warning in warnings:
        logger.warning("--chardev %s: %s", text, warning)
    if chardev.path is not None:
        try:
            startup.sockets[chardev.id] = await open_unix_listener(
                chardev.path, create_parent=False)
        except StartupError as error:
            raise OptionFailed(str(error).removeprefix("qjobd: ")) from error


async def _monitor(startup: Startup, text: str) -> None:
    try:
        startup.monitors.add_monitor(text)
    except ChardevError as error:
        raise OptionFailed(str(error)) from error


def _unsupported(what: str) -> Callable[[Startup, str], Awaitable[None]]:
    async def refuse(_startup: Startup, _text: str) -> None:
        raise OptionFailed(f"{what} are not supported by qjobd")
    return refuse


#: What each ordered option does, by long name.
ORDERED: Final[dict[str, Callable[[Startup, str], Awaitable[None]]]] = {
    "blockdev": _blockdev,
    "chardev": _chardev,
    "monitor": _monitor,
    "export": _unsupported("block exports (--export)"),
    "nbd-server": _unsupported("NBD servers (--nbd-server)"),
    "object": _unsupported("QOM objects such as iothreads (--object)"),
    "trace": _unsupported("trace events (--trace)"),
}


async def _build(startup: Startup, items: Sequence[Item]) -> None:
    """Process the ordered options in order.

    :raise StartupError: the first that fails, as ``qjobd: <option>: <message>``.
    """
    for item in items:
        if item.option is UNEXPECTED:
            raise StartupError(f"qjobd: {item.location}: Unexpected argument")
        if not item.option.ordered:
            continue
        assert item.value is not None
        try:
            await ORDERED[item.option.name](startup, item.value)
        except OptionFailed as error:
            raise StartupError(f"qjobd: {item.location}: {error}") from error


async def _serve(startup: Startup, items: Sequence[Item], settings: dict[str, str],
                 daemonizer: Daemonizer) -> None:
    await _build(startup, items)
    listeners, stdio = startup.served()
    listeners += [ActivatedListener(sock) for sock in listen_sockets()]
    socket_path = settings.get("socket")
    if socket_path is None and not listeners and stdio is None:
        socket_path = str(default_socket_path())
    pidfile = PidFile(Path(settings["pidfile"])) if "pidfile" in settings else None
    try:
        # The PID file first, as in QSD (which has no socket of its own): its
        # error is the one a QSD script expects, whatever listens on the socket.
        if pidfile is not None:
            pidfile.write()
        if socket_path is not None:
            listeners.append(await open_unix_listener(Path(socket_path)))
        for listener in listeners:
            if isinstance(listener, UnixListener):
                logger.info("listening on %s", listener.path)
        daemonizer.started()
        await _run(startup.daemon, listeners, stdio)
    finally:
        for listener in [*listeners, *startup.sockets.values()]:
            await listener.aclose()
        if pidfile is not None:
            pidfile.remove()


async def _run(daemon: Daemon, listeners: list[Listener], stdio: StdioChannel | None) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, daemon, signals)
            async with trio.open_nursery() as serving:
                await serving.start(partial(daemon.serve, listeners=listeners, stdio=stdio))
                notify("READY=1")
            nursery.cancel_scope.cancel()


async def _stop_on_signal(daemon: Daemon, signals: AsyncIterator[int]) -> None:
    async for number in signals:
        logger.info("got %s, stopping", signal.Signals(number).name)
        daemon.request_exit()


def _settings(items: Sequence[Item]) -> tuple[dict[str, str], str | None]:
    """The first pass: settings (last one wins; a flag's value is ""), or what to
    print and exit 0 with (help, version)."""
    settings: dict[str, str] = {}
    for item in items:
        option: Option = item.option
        if option.name == "help":
            return settings, _help()
        if option.name == "version":
            return settings, f"qjobd {__version__}"
        if option is not UNEXPECTED and not option.ordered:
            settings[option.name] = item.value if item.value is not None else ""
    return settings, None


def _log_handler(log_file: str | None) -> logging.Handler:
    """Where the log goes: stderr, or ``--log-file``, opened now (a relative path
    names the directory qjobd was started in, not "/" where a daemon ends up).

    The file is reopened when it is moved away, so logrotate works without a
    signal; with ``--daemonize``, whose stderr is /dev/null as in QSD, it is the
    only log there is.
    """
    if log_file is None:
        return logging.StreamHandler(sys.stderr)
    return logging.handlers.WatchedFileHandler(os.path.abspath(log_file))


def main(argv: list[str] | None = None) -> int:
    items, mistake = scan(sys.argv[1:] if argv is None else argv)
    settings, text = _settings(items)
    if text is not None:
        print(text)
        return 0
    if mistake is not None:
        print(f"qjobd: {mistake}", file=sys.stderr)
        return 1
    level = settings.get("log-level", "info")
    if level not in LOG_LEVELS:
        print(f"qjobd: --log-level {level}: expected one of {', '.join(LOG_LEVELS)}",
              file=sys.stderr)
        return 1
    try:
        log_handler = _log_handler(settings.get("log-file"))
    except OSError as error:
        print(f"qjobd: --log-file {settings['log-file']}: {error.strerror}", file=sys.stderr)
        return 1
    daemonizer = Daemonizer()
    if "daemonize" in settings:
        daemonizer.detach()
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s qjobd %(levelname)s %(name)s: %(message)s",
        handlers=[log_handler],
    )
    try:
        socket = Path(settings["socket"]) if "socket" in settings else default_socket_path()
        history = settings.get("history")
        daemon = Daemon(history_path=Path(history) if history else default_history_path(socket))
    except StartupError as error:
        print(str(error), file=sys.stderr)
        return 1
    except QAPIError as error:
        print(f"qjobd: bundled schema is invalid: {error}", file=sys.stderr)
        return 1
    startup = Startup(daemon, MonitorSetup(daemonize="daemonize" in settings))
    status = 0
    try:
        trio.run(_serve, startup, items, settings, daemonizer)
    except* StartupError as group:
        for failure in group.exceptions:
            print(str(failure), file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

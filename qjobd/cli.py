"""``qjobd``: the daemon's command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from qjobd import __version__
from qjobd.qapi.error import QAPIError
from qjobd.server.daemon import Daemon
from qjobd.server.listener import StartupError, default_history_path, default_socket_path

__all__ = ["main"]

logger = logging.getLogger("qjobd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qjobd",
        description="Run disk jobs (backup, mirror, ...) driven over QMP on a Unix socket.",
    )
    parser.add_argument(
        "--socket", type=Path, default=None,
        help=f"QMP socket path (default: {default_socket_path()})",
    )
    parser.add_argument(
        "--log-level", default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        help="how much to log on stderr (default: info)",
    )
    parser.add_argument(
        "--history", type=Path, default=None,
        help="job history file (default: history.sqlite3 in SOCKET.state/, next to the socket)",
    )
    parser.add_argument("--version", action="version", version=f"qjobd {__version__}")
    return parser


async def _run(daemon: Daemon, socket_path: Path) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, daemon, signals)
            await daemon.serve(socket_path)
            nursery.cancel_scope.cancel()


async def _stop_on_signal(daemon: Daemon, signals: AsyncIterator[int]) -> None:
    async for number in signals:
        logger.info("got %s, stopping", signal.Signals(number).name)
        daemon.request_exit()


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(),
        format="%(asctime)s qjobd %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    socket_path = options.socket or default_socket_path()
    try:
        daemon = Daemon(history_path=options.history or default_history_path(socket_path))
    except StartupError as error:
        print(str(error), file=sys.stderr)
        return 1
    except QAPIError as error:
        print(f"qjobd: bundled schema is invalid: {error}", file=sys.stderr)
        return 1
    status = 0
    try:
        trio.run(_run, daemon, socket_path)
    except* StartupError as group:
        for failure in group.exceptions:
            print(str(failure), file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

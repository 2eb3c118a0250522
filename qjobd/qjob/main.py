"""``qjob``: the operator's command line for qjobd (and qemu-storage-daemon).

Exit status: 0 on success, 1 when a job failed (or the daemon refused the
command, or a wait timed out), 2 for usage errors, connection errors and features
the daemon lacks.  ``--json`` makes every listing machine-readable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from qemu.qmp import ExecuteError
from qemu.qmp.error import QMPError
from rich.console import Console

from qjobd.client import models as m
from qjobd.server.listener import default_socket_path

from .display import ProgressBoard, job_table, status_line
from .session import (
    HISTORY_COMMAND,
    ConnectionLost,
    JobView,
    Session,
    WaitTimeout,
    apply_job_data,
    connect,
)

__all__ = ["main"]

OK, FAILED, USAGE = 0, 1, 2


class Failure(Exception):
    """Stop with ``status`` after printing ``message`` on stderr."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qjob", description="List, start, watch and steer qjobd's jobs "
        "(also works with qemu-storage-daemon).")
    parser.add_argument("--socket", type=Path, default=None,
                        help=f"the daemon's QMP socket (default: {default_socket_path()})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, listing: bool = False) -> argparse.ArgumentParser:
        one = sub.add_parser(name, help=text, description=text)
        if listing:
            one.add_argument("--json", action="store_true", help="print JSON for scripts")
        return one

    command("list", "list the jobs", listing=True)
    watch = command("watch", "show progress bars for every job until all have finished",
                    listing=True)
    watch.add_argument("--interval", type=float, default=0.5,
                       help="seconds between polls when the daemon pushes no progress")
    wait = command("wait", "wait until a job finishes; exit 1 if it failed", listing=True)
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    for name, text in (("backup", "copy SRC (a node or device) to the image DST"),
                       ("mirror", "mirror SRC (a node or device) to the image DST")):
        one = command(name, text, listing=True)
        one.add_argument("src")
        one.add_argument("dst")
        one.add_argument("--format", default="raw", help="DST's format (default: raw)")
        one.add_argument("--sync", default="full", choices=("full", "top", "none"))
        one.add_argument("--existing", action="store_true", help="DST exists; do not create it")
        _job_options(one)
    for name, text in (("commit", "commit SRC's backing chain into its base"),
                       ("stream", "copy SRC's backing chain into SRC")):
        one = command(name, text, listing=True)
        one.add_argument("src")
        one.add_argument("--base", default=None, help="the base image (file name)")
        _job_options(one)
    snapshot = command("snapshot", "snapshot a node: an external qcow2 overlay FILE, or "
                       "an internal snapshot NAME with --internal")
    snapshot.add_argument("node")
    snapshot.add_argument("target", metavar="FILE|NAME")
    snapshot.add_argument("--internal", action="store_true")
    snapshot.add_argument("--node-name", default=None,
                          help="the overlay's node name (default: NODE-overlay); QEMU "
                          "wants one when the snapshot is of a node, not a device")
    for verb in ("pause", "resume", "cancel", "complete", "dismiss", "finalize"):
        command(verb, f"{verb} the job ID").add_argument("id")
    history = command("history", "list finished jobs (qjobd's x-query-job-history)",
                      listing=True)
    history.add_argument("--limit", type=int, default=None)
    raw = command("raw", "send one QMP command written as JSON; print the reply")
    raw.add_argument("message", help='for example \'{"execute": "query-jobs"}\'')
    return parser


def _job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job-id", default=None, help="the new job's id (default: generated)")
    parser.add_argument("--speed", type=int, default=None, help="rate limit in bytes/s")
    parser.add_argument("--wait", action="store_true",
                        help="follow the job with progress bars until it finishes (or "
                        "is ready: a mirror or active commit then waits for complete)")


def _print_json(value: object) -> None:
    print(json.dumps(value), flush=True)


def _say(console: Console, text: str) -> None:
    """One line for people and for scripts that read them: as it is, not taken for
    rich markup (an error or a path may hold brackets), and not folded at 80
    columns when stdout is no terminal."""
    console.print(text, markup=False, soft_wrap=True)


# Section: commands


async def cmd_list(session: Session, options: argparse.Namespace, console: Console) -> int:
    jobs = await session.jobs()
    if options.json:
        _print_json([job.to_json() for job in jobs])
        return OK
    views = []
    for job in jobs:
        view = JobView(job.id)
        view.update_from_info(job)
        views.append(view)
    if not views:
        _say(console, "no jobs")
    else:
        console.print(job_table(views))
    return OK


async def _follow(session: Session, options: argparse.Namespace, console: Console,
                  only: str | None = None,
                  start: Callable[[], Awaitable[None]] | None = None) -> int:
    """Follow the jobs (or only the job ``only``, which ``start`` starts) with
    progress bars, or with --json a line each time what is shown changes."""
    views: dict[str, JobView] = {}
    interval = getattr(options, "interval", 0.5)

    def shown() -> list[JobView]:
        return [v for v in views.values() if only in (None, v.id)]

    if options.json:
        last: list[str] = []

        def redraw() -> None:
            line = json.dumps([v.to_json() for v in shown()])
            if line != (last[-1] if last else None):  # a poll with no news says nothing
                last.append(line)
                print(line, flush=True)
        await session.follow(views, interval, redraw, only=only, start=start)
    else:
        with ProgressBoard(console) as board:
            await session.follow(views, interval, lambda: board.show(shown()), only=only,
                                 start=start)
        if not shown():
            _say(console, "no jobs")
        for view in shown():
            _say(console, status_line(view))
    return FAILED if any(v.failed for v in shown()) else OK


async def cmd_watch(session: Session, options: argparse.Namespace, console: Console) -> int:
    return await _follow(session, options, console)


async def cmd_wait(session: Session, options: argparse.Namespace, console: Console) -> int:
    try:
        view = await session.wait(options.id, options.timeout)
    except LookupError:
        raise Failure(f"qjob: no job '{options.id}'") from None
    except WaitTimeout:
        raise Failure(f"qjob: job '{options.id}' did not finish in {options.timeout} s") \
            from None
    if options.json:
        _print_json(view.to_json())
    else:
        _say(console, status_line(view))
    return FAILED if view.failed else OK


async def _started(session: Session, options: argparse.Namespace, console: Console,
                   job_id: str, start: Callable[[], Awaitable[None]]) -> int:
    """Start a job; follow it with --wait (from before it starts, so that even a
    job that ends at once is seen ending), else say its id."""
    if not options.wait:
        await start()
        if options.json:
            _print_json({"id": job_id})
        else:
            _say(console, f"started job {job_id}")
        return OK
    return await _follow(session, options, console, only=job_id, start=start)


def _job_id(options: argparse.Namespace, kind: str) -> str:
    return str(options.job_id or f"qjob-{kind}-{options.src}")


async def cmd_backup(session: Session, options: argparse.Namespace, console: Console) -> int:
    job_id = _job_id(options, "backup")
    mode = m.NewImageMode.EXISTING if options.existing else None
    return await _started(session, options, console, job_id, lambda: session.client.drive_backup(
        job_id=job_id, device=options.src, target=options.dst, format=options.format,
        sync=m.MirrorSyncMode(options.sync), speed=options.speed, mode=mode))


async def cmd_mirror(session: Session, options: argparse.Namespace, console: Console) -> int:
    job_id = _job_id(options, "mirror")
    mode = m.NewImageMode.EXISTING if options.existing else None
    return await _started(session, options, console, job_id, lambda: session.client.drive_mirror(
        job_id=job_id, device=options.src, target=options.dst, format=options.format,
        sync=m.MirrorSyncMode(options.sync), speed=options.speed, mode=mode))


async def cmd_commit(session: Session, options: argparse.Namespace, console: Console) -> int:
    job_id = _job_id(options, "commit")
    return await _started(session, options, console, job_id, lambda: session.client.block_commit(
        job_id=job_id, device=options.src, base=options.base, speed=options.speed))


async def cmd_stream(session: Session, options: argparse.Namespace, console: Console) -> int:
    job_id = _job_id(options, "stream")
    return await _started(session, options, console, job_id, lambda: session.client.block_stream(
        job_id=job_id, device=options.src, base=options.base, speed=options.speed))


async def cmd_snapshot(session: Session, options: argparse.Namespace, console: Console) -> int:
    if options.internal:
        await session.client.blockdev_snapshot_internal_sync(device=options.node,
                                                             name=options.target)
    else:
        # By node-name QEMU needs the overlay's node name too ("New overlay
        # node-name missing"); by device it finds no node in a storage daemon.
        await session.client.blockdev_snapshot_sync(
            node_name=options.node, snapshot_file=options.target, format="qcow2",
            snapshot_node_name=options.node_name or f"{options.node}-overlay")
    _say(console, f"snapshot {options.target} of {options.node} taken")
    return OK


async def cmd_verb(session: Session, options: argparse.Namespace, console: Console) -> int:
    await session.client.execute(f"job-{options.command}", {"id": options.id})
    _say(console, f"{options.command}: {options.id}")
    return OK


async def cmd_history(session: Session, options: argparse.Namespace, console: Console) -> int:
    if not await session.has_command(HISTORY_COMMAND):
        raise Failure(f"qjob: this daemon keeps no job history (it lacks qjobd's "
                      f"{HISTORY_COMMAND} command)", USAGE)
    arguments: dict[str, object] = {}
    if options.limit is not None:
        arguments["limit"] = options.limit
    reply = await session.client.execute(HISTORY_COMMAND, arguments)
    entries = reply if isinstance(reply, list) else []
    if options.json:
        _print_json(entries)
        return OK
    views = []
    for entry in entries:
        if isinstance(entry, dict):
            view = JobView(str(entry.get("id")))
            apply_job_data({view.id: view}, entry)
            views.append(view)
    if views:
        console.print(job_table(views, title="finished jobs", finished=True))
    else:
        _say(console, "no finished jobs")
    return OK


async def cmd_raw(session: Session, options: argparse.Namespace, console: Console) -> int:
    message = options.parsed
    try:
        value = await session.client.execute(message["execute"], message.get("arguments"))
    except ExecuteError as error:
        reply = dict(error.received)
        reply.pop("id", None)  # qemu.qmp's own, not the user's
        _print_json(reply)
        return FAILED
    _print_json({"return": value})
    return OK


COMMANDS: dict[str, Callable[[Session, argparse.Namespace, Console], Awaitable[int]]] = {
    "list": cmd_list, "watch": cmd_watch, "wait": cmd_wait, "backup": cmd_backup,
    "mirror": cmd_mirror, "commit": cmd_commit, "stream": cmd_stream,
    "snapshot": cmd_snapshot, "history": cmd_history, "raw": cmd_raw,
    **dict.fromkeys(("pause", "resume", "cancel", "complete", "dismiss", "finalize"),
                    cmd_verb),
}


def _parse_raw(parser: argparse.ArgumentParser, text: str) -> dict[str, object]:
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        parser.error(f"raw: not JSON: {error}")
    if not isinstance(message, dict) or not isinstance(message.get("execute"), str):
        parser.error('raw: expected an object like {"execute": "query-jobs"}')
    if not isinstance(message.get("arguments", {}), dict):
        parser.error("raw: 'arguments' must be an object")
    return message


async def _run(options: argparse.Namespace, console: Console) -> int:
    socket = options.socket or default_socket_path()
    wants_progress = options.command == "watch" or getattr(options, "wait", False) is True
    try:
        session = await connect(socket, progress=wants_progress)
    except (OSError, QMPError) as error:
        raise Failure(f"qjob: cannot connect to {socket}: {error}", USAGE) from None
    try:
        return await COMMANDS[options.command](session, options, console)
    except ExecuteError as error:
        raise Failure(f"qjob: {options.command}: {error}") from None
    except (ConnectionLost, QMPError, OSError, EOFError):
        # ExecuteError is a QMPError too, caught above: what is left is the
        # daemon going away mid-command (qemu.qmp's ExecInterruptedError...).
        raise Failure(f"qjob: lost the connection to {socket}", USAGE) from None
    finally:
        await session.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command == "raw":
        options.parsed = _parse_raw(parser, options.message)
    if options.command == "snapshot" and options.internal and options.node_name:
        parser.error("snapshot: --node-name is for external snapshots, not --internal")
    console = Console(highlight=False)
    try:
        return asyncio.run(_run(options, console))
    except Failure as failure:
        print(str(failure), file=sys.stderr)
        return failure.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

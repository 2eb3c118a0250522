"""What qjob shows people: job tables and live progress bars (with ``rich``).

Scripts use ``--json`` instead, which never goes through this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from .session import JobView

__all__ = ["ProgressBoard", "job_table", "status_line"]


def _percent(view: JobView) -> str:
    if view.total <= 0:
        return "-"
    return f"{100 * view.current // view.total}%"


def status_line(view: JobView) -> str:
    """``bk1 backup running 42%``; a job that finished is ``done`` (or ``failed:``
    and the error), whether or not it is still listed."""
    status = ("failed" if view.failed else "done") if view.finished else view.status
    if view.finished and view.error is not None:
        return f"{view.id} {view.type} failed: {view.error}"
    text = f"{view.id} {view.type} {status} {_percent(view)}"
    return f"{text} failed: {view.error}" if view.error is not None else text


def _local_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def job_table(views: Iterable[JobView], title: str = "jobs", finished: bool = False) -> Table:
    """A row per job; with ``finished``, also when each concluded (the history's
    point is what ran and when)."""
    columns = ["id", "type", "status", "progress", "error"]
    if finished:
        columns.insert(3, "finished")
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for view in views:
        cells = [view.id, view.type, view.status, _percent(view), view.error or ""]
        if finished:
            cells.insert(3, _local_time(view.time_finished))
        table.add_row(*(Text(cell) for cell in cells))  # ids and errors are not markup
    return table


class ProgressBoard:
    """One progress bar per job, redrawn in place on a terminal."""

    def __init__(self, console: Console) -> None:
        # Job ids, descriptions and errors are shown as they are, not as markup.
        self.progress = Progress(
            TextColumn("{task.fields[job]}", markup=False), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[status]}", markup=False),
            TextColumn("{task.fields[note]}", markup=False),
            console=console, refresh_per_second=8,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressBoard:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def show(self, views: Iterable[JobView]) -> None:
        for view in views:
            task = self._tasks.get(view.id)
            if task is None:
                task = self._tasks[view.id] = self.progress.add_task(
                    "", job=f"{view.id} ({view.type})", status="", note="", total=None)
            total = view.total if view.total > 0 else None
            completed = view.current
            if view.finished and view.error is None and total is not None:
                completed = total
            note = view.description
            if view.rate:
                note = f"{note} {view.rate / 2**20:.1f} MiB/s".strip()
            if view.error is not None:
                note = f"failed: {view.error}"
            self.progress.update(task, total=total, completed=completed,
                                 job=f"{view.id} ({view.type})", status=view.status, note=note)

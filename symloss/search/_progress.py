"""The search's progress display: a rich bar on a terminal, one plain stderr line per update elsewhere."""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from typing import Any


class PlainProgress(AbstractContextManager):
    """The slice of ``rich.progress.Progress`` the search uses (``add_task``, ``update``), printed as plain lines
    ``search [k/N, 3.2 min] <description>`` on stderr: under ``nohup`` or in a log file a rich bar does not
    animate, and a 15-minute search would otherwise show nothing between its first line and its tables."""

    def __init__(self) -> None:
        self._tasks: dict[int, dict[str, Any]] = {}
        self._start = time.perf_counter()

    def add_task(self, description: str, *, total: float, completed: float = 0) -> int:
        self._tasks[len(self._tasks)] = {"description": description, "total": total, "completed": completed}
        return len(self._tasks) - 1

    def update(self, task: int, *, description: str | None = None, advance: float = 0) -> None:
        entry = self._tasks[task]
        entry["completed"] += advance
        if description is not None:
            entry["description"] = description
        minutes = (time.perf_counter() - self._start) / 60
        print(f"search [{entry['completed']:g}/{entry['total']:g}, {minutes:.1f} min] {entry['description']}",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        return None


def progress_display() -> AbstractContextManager:
    """A rich progress bar when stderr is a terminal, else a :class:`PlainProgress`."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return PlainProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console)

"""Rich progress bars shared by every long-running operation (library and CLI alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressBar", "progress_bar"]


class ProgressBar:
    """One task on a Rich progress display; `advance(n)` after each unit of work."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task, amount)


@contextmanager
def progress_bar(description: str, total: float | None, *, enabled: bool = True) -> Iterator[ProgressBar]:
    """Show a progress bar on stderr while the block runs; disabled bars cost nothing."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    with progress:
        yield ProgressBar(progress, progress.add_task(description, total=total))

"""Progress bars in the terminal (rich) for the library's :class:`mmembed.progress.Progress`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class RichProgress:
    """A transient bar per tracked step: description, bar, done/total, elapsed, remaining."""

    def __init__(self, console=None):
        self.console = console

    def track(self, iterable: Iterable[T], total: int | None = None,
              description: str = "") -> Iterator[T]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=self.console, transient=True) as bar:
            yield from bar.track(iterable, total=total, description=description)

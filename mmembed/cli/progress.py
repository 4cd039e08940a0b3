"""Progress bars in the terminal (rich) for the library's :class:`mmembed.progress.Progress`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class RichProgress:
    """A transient bar per tracked step (description, bar, done/total, elapsed, remaining),
    and a spinner per phase that leaves one line behind: ``✓ clustering (3.2 s)``.

    Use it as a context manager, so that a phase an error interrupted stops drawing.
    """

    def __init__(self, console=None):
        from mmembed.cli.terminal import make_console

        self.console = console or make_console()
        self._phase = None  # (description, start time, its live spinner)

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.phase(None)

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

    def phase(self, description: str | None) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        if self._phase is not None:
            name, start, spinner = self._phase
            spinner.stop()
            self.console.print(f"[green]✓[/green] {name} ({time.perf_counter() - start:.1f} s)",
                               highlight=False)
            self._phase = None
        if description and not self.console.is_terminal:  # a log file: the ✓ line alone
            self._phase = (description, time.perf_counter(), _NoSpinner())
        elif description:
            spinner = Progress(SpinnerColumn(), TextColumn(description), TimeElapsedColumn(),
                               console=self.console, transient=True)
            spinner.add_task(description, total=None)
            spinner.start()
            self._phase = (description, time.perf_counter(), spinner)


class _NoSpinner:
    def stop(self) -> None:
        pass

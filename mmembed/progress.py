"""Progress of long steps, reported by the library and drawn by the apps.

The library never prints: a function with a long loop (decoding every image, computing tower
features, each phase of a bundle build) takes a ``progress`` argument and wraps its loop in
``progress.track(iterable, total, description)``; a step with no loop of its own (clustering,
building the index) is announced with ``progress.phase(description)``, which also ends the
phase before it (``progress.phase(None)`` ends the last). :data:`QUIET` does nothing; the
command-line apps pass :class:`mmembed.cli.progress.RichProgress`, which draws a bar per step
and prints one line with its time when a phase ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")

__all__ = ["QUIET", "Progress"]


class Progress(Protocol):
    def track(self, iterable: Iterable[T], total: int | None, description: str) -> Iterable[T]:
        """Yield ``iterable``'s items, showing how many of ``total`` are done."""
        ...

    def phase(self, description: str | None) -> None:
        """End the current phase, if any, and start ``description`` (``None``: start none)."""
        ...


class _Quiet:
    def track(self, iterable: Iterable[T], total: int | None = None,
              description: str = "") -> Iterator[T]:
        yield from iterable

    def phase(self, description: str | None) -> None:
        pass


#: Reports nothing.
QUIET: Progress = _Quiet()

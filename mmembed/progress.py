"""Progress of long steps, reported by the library and drawn by the apps.

The library never prints: a function with a long loop (decoding every image, computing tower
features, each phase of a bundle build) takes a ``progress`` argument and wraps its loop in
``progress.track(iterable, total, description)``. :data:`QUIET` does nothing; the command-line
apps pass :class:`mmembed.cli.progress.RichProgress`, which draws a bar per step.
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


class _Quiet:
    def track(self, iterable: Iterable[T], total: int | None = None,
              description: str = "") -> Iterator[T]:
        yield from iterable


#: Reports nothing.
QUIET: Progress = _Quiet()

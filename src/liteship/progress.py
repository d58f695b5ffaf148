"""Progress bars for long work (rich, on stderr; nothing is drawn when stderr is not a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(
    iterable: Iterable[T], *, total: int | None = None, description: str = "working", enabled: bool = True
) -> Iterator[T]:
    """Yield from ``iterable`` while drawing a progress bar on stderr when it is a terminal.

    Args:
        iterable: The work items.
        total: Number of items, when ``iterable`` has no ``len``.
        description: Text before the bar.
        enabled: Set ``False`` to never draw (library callers that draw their own).
    """
    if not enabled or not sys.stderr.isatty():
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(
        iterable, total=total, description=description, console=Console(stderr=True), transient=True
    )

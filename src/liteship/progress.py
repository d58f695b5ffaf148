"""Progress bars for long work (rich, on stderr; nothing is drawn when stderr is not a terminal)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
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


@contextlib.contextmanager
def track_until(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A progress display for work that is counted as it arrives (e.g. devices answering a job).

    Yields ``update(done, total)``. On a terminal a bar on stderr; otherwise one line on stderr each
    time ``done`` changes (so a log shows the progress too); nothing when ``enabled`` is false.
    """
    if not enabled:
        yield lambda done, total: None
        return
    if not sys.stderr.isatty():
        last = [-1]

        def line(done: int, total: int) -> None:
            if done != last[0]:
                last[0] = done
                print(f"{description}: {done}/{total}", file=sys.stderr, flush=True)

        yield line
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)

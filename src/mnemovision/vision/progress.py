"""Progress bars and logging through rich, so long jobs show where they are."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_LOGGER_NAME = "mnemovision"


def get_logger(name: str | None = None) -> logging.Logger:
    """A logger under the ``mnemovision`` hierarchy; a rich handler is attached once to the root of it."""
    root = logging.getLogger(_LOGGER_NAME)
    if not root.handlers:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return root if not name else root.getChild(name.removeprefix(_LOGGER_NAME + "."))


def make_progress(transient: bool = False):
    """A ``rich.progress.Progress`` with a bar, counts, rate and time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
    )


def track(items: Iterable[T], description: str, total: int | None = None, transient: bool = False) -> Iterator[T]:
    """Iterate ``items`` with a rich progress bar (``total`` defaults to ``len(items)`` when known).
    Inside another bar (e.g. a per-video step inside a loop over videos), recent rich (15) nests the
    two; older rich allows one live display at a time, so there the inner loop runs without a bar."""
    from rich.errors import LiveError

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    progress = make_progress(transient)
    try:
        progress.start()
    except LiveError:
        yield from items
        return
    try:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)
    finally:
        progress.stop()

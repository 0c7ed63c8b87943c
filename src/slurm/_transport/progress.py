"""Progress of long transfers to the cluster: bytes and rate, as waits show theirs.

A transport calls its ``progress`` hook as a transfer advances (what, bytes
done, bytes in all). :func:`terminal_progress` is the default over SSH: a
rich bar on stderr with bytes and rate, for a transfer of at least
``threshold`` bytes, shown only on a terminal (a log file gets nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["LARGE_TRANSFER", "Progress", "terminal_progress"]

#: A hook ``(what, done, total)``; ``done == total`` once at the end.
Progress = Callable[[str, int, int], None]

#: Transfers from this size on show a bar.
LARGE_TRANSFER = 8 * 1024 * 1024


def terminal_progress(
    threshold: int = LARGE_TRANSFER, console: Any = None, *, always: bool = False
) -> Progress:
    """A hook that draws a bar for each large transfer on ``console`` (stderr by default).

    ``always`` draws even when the console is not a terminal (tests).
    """
    bars: dict[str, Any] = {}

    def report(what: str, done: int, total: int) -> None:
        if total < threshold:
            return
        bar = bars.get(what)
        if bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            shown = console or Console(stderr=True)
            if not (always or shown.is_terminal or sys.stderr.isatty()):
                return
            progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=shown,
                transient=False,
            )
            task = progress.add_task(what, total=total)
            progress.start()
            bar = bars[what] = (progress, task)
        progress, task = bar
        progress.update(task, completed=done)
        if done >= total:
            progress.stop()
            del bars[what]

    return report

"""``configure_logging()``: readable logs on the client and inside jobs."""

from __future__ import annotations

import logging as _logging
import os
import sys

__all__ = ["configure_logging"]

_MARK = "_slurm_sdk_handler"


def configure_logging(
    level: int | str | None = None, *, rich: bool | None = None, use_rich: bool | None = None
) -> None:
    """Send log records to stderr in a readable format; safe to call repeatedly.

    On a terminal the client uses rich's handler; inside a Slurm job (or when
    stderr is not a terminal) a plain line format carrying the job id is used,
    so log files read well. ``level`` defaults to ``$SLURM_SDK_LOG_LEVEL`` or INFO.
    ``rich`` (or ``use_rich``, the earlier SDK's name) forces the choice.

    Example::

        configure_logging(logging.DEBUG, use_rich=False)
    """
    if rich is None:
        rich = use_rich
    level = level or os.environ.get("SLURM_SDK_LOG_LEVEL", "INFO")
    root = _logging.getLogger()
    root.setLevel(level)
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return
    in_job = "SLURM_JOB_ID" in os.environ
    use_rich = rich if rich is not None else (sys.stderr.isatty() and not in_job)
    handler: _logging.Handler
    if use_rich:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=True)
        handler.setFormatter(_logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        job = os.environ.get("SLURM_JOB_ID")
        tag = f" [job {job}]" if job else ""
        handler = _logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            _logging.Formatter(f"%(asctime)s %(levelname)-7s %(name)s{tag}: %(message)s")
        )
    setattr(handler, _MARK, True)
    root.addHandler(handler)

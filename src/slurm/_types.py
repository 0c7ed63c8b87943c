"""``TYPE_CHECKING`` and ``overload`` without :mod:`typing` (issue 27).

Every job imports the modules of its start path; ``typing`` would cost it
about 5 ms, for names only type checkers read. Those modules write
``from slurm._types import TYPE_CHECKING`` and import what they annotate
with under ``if TYPE_CHECKING:``; type checkers take any ``TYPE_CHECKING``
as true, and ruff (``typing-modules``) and mypy take this ``overload`` for
typing's. ``tests/unit/test_runner_imports.py`` pins what a job imports.
"""

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import overload
else:

    def overload(fn: object) -> object:
        """As :func:`typing.overload` at run time: the implementation that follows wins."""
        return fn


__all__ = ["TYPE_CHECKING", "overload"]

"""Where a callback's hook runs: :class:`ExecutionLocus` (its own module, so that the
hooks and the contexts they make can both import it)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ExecutionLocus"]


class ExecutionLocus(StrEnum):
    """Where a hook runs: on the client (where you submit), on the runner (the node), or both."""

    CLIENT = "client"
    RUNNER = "runner"
    BOTH = "both"

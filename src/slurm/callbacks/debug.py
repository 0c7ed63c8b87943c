"""``DebugCallback``: a debugpy listener in the job, for attaching your editor's debugger."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from slurm.callbacks.callbacks import BaseCallback, ExecutionLocus, RunBeginContext

__all__ = ["DebugCallback"]

logger = logging.getLogger("slurm.callbacks")


class DebugCallback(BaseCallback):
    """Start debugpy on the node when the job starts, and say where to attach.

    Args:
        port: the port debugpy listens on (``$DEBUGPY_PORT`` wins).
        wait_for_client: hold the function until a debugger attaches (``$DEBUGPY_WAIT``);
            the hook then has no time limit.
        host: the address debugpy binds (``$DEBUGPY_HOST``).
        log_connection_info: log the node, port and how to attach.

    debugpy must be installed where the job runs: where the SDK builds the job's
    environment, the debugpy installed here joins it; without it the hook logs a
    warning and the job runs as usual. Reach the port through an SSH tunnel to
    the node (``ssh -L 5678:NODE:5678 login``), then attach.
    """

    execution_loci: ClassVar[Mapping[str, ExecutionLocus | str]] = {
        "on_begin_run_job_ctx": ExecutionLocus.RUNNER,
    }
    job_modules = ("debugpy",)  # imported in the hook, so no closure walk finds it

    def __init__(
        self,
        *,
        port: int = 5678,
        wait_for_client: bool = False,
        host: str = "0.0.0.0",  # noqa: S104 (a debugger attaches from elsewhere)
        log_connection_info: bool = True,
    ) -> None:
        self.port = port
        self.wait_for_client = wait_for_client
        self.host = host
        self.log_connection_info = log_connection_info

    @property
    def hook_timeout_secs(self) -> float | None:  # type: ignore[override]
        """No limit while it waits for a debugger; else the default."""
        return None if self.wait_for_client else BaseCallback.hook_timeout_secs

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        port = int(os.environ.get("DEBUGPY_PORT") or self.port)
        wait = bool(os.environ.get("DEBUGPY_WAIT")) or self.wait_for_client
        host = os.environ.get("DEBUGPY_HOST") or self.host
        try:
            import debugpy
        except ImportError:
            logger.warning(
                "DebugCallback: debugpy is not installed where the job runs; the job runs "
                "without a debugger. Install debugpy in the job's environment."
            )
            return
        debugpy.listen((host, port))
        if self.log_connection_info:
            node = ctx.hostname or os.uname().nodename
            logger.warning(
                "debugpy listens on %s:%d (job %s); attach to %s:%d, e.g. through "
                "`ssh -L %d:%s:%d LOGIN_HOST`",
                node,
                port,
                ctx.job_id,
                node,
                port,
                port,
                node,
                port,
            )
        if wait:
            logger.warning("waiting for a debugger to attach...")
            debugpy.wait_for_client()

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

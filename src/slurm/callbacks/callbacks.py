"""Callback classes: subclass :class:`BaseCallback` and pass ``Cluster(callbacks=[...])``."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["BaseCallback", "LoggerCallback", "RichLoggerCallback"]


class BaseCallback:
    """Override the events you care about; each receives the Job (or ArrayJob)."""

    def on_submit(self, job: Any) -> None:
        """Called right after a job (or array) has been accepted by sbatch."""


class LoggerCallback(BaseCallback):
    """Log submissions through the standard ``logging`` module."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("slurm")

    def on_submit(self, job: Any) -> None:
        self.logger.info("submitted %s as job %s (%s)", job.name, job.id, job.job_dir)


class RichLoggerCallback(BaseCallback):
    """Print submissions on the terminal with rich."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    def on_submit(self, job: Any) -> None:
        self.console.print(
            f"[green]submitted[/green] [bold]{job.name}[/bold] as job [cyan]{job.id}[/cyan]"
        )

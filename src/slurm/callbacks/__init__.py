"""Hooks called as jobs are submitted and finish."""

from slurm.callbacks.callbacks import BaseCallback, LoggerCallback, RichLoggerCallback

__all__ = ["BaseCallback", "LoggerCallback", "RichLoggerCallback"]

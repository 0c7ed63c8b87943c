"""A task that says which Python runs it, in a module that imports nothing else: its
job runs in the environment ``environment_for`` names (no extra distributions)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["where"]


def where() -> dict[str, Any]:
    """The Python a job runs on."""
    return {
        "version": list(sys.version_info[:3]),
        "executable": sys.executable,
        "base_prefix": sys.base_prefix,
    }

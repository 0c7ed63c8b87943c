"""The callbacks that travel to the node, beside the payload (``callbacks.pkl``).

Each callback is pickled on its own (cloudpickle), so that one that cannot be
pickled, or cannot be rebuilt on the node (its class is not importable there),
costs only its own hooks: a warning names it and the others still run. The
file is a versioned record, read as plain pickle only from the job's own
directory, like the payload.

It is not part of the payload on purpose: a callback's state changes as it
hears events, and a restarted workflow matches its calls by the payload's
bytes (see :mod:`slurm._wire.journal`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = ["CALLBACKS_VERSION", "dumps_callbacks", "loads_callbacks"]

CALLBACKS_VERSION = 1


def _name(callback: Any) -> str:
    return type(callback).__qualname__.rpartition("<locals>.")[2]


def dumps_callbacks(callbacks: Sequence[Any], warn: Callable[[str], None]) -> bytes | None:
    """The record of ``callbacks``, or None when none of them could be pickled."""
    import cloudpickle

    pickled: list[tuple[str, bytes]] = []
    for callback in callbacks:
        try:
            data = cloudpickle.dumps(callback, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            warn(
                f"callback {_name(callback)} cannot be pickled ({type(exc).__name__}: {exc}): "
                "its runner-side hooks will not run on the node; the job is submitted without "
                "them. Give it a __getstate__ that leaves out what cannot travel (locks, open "
                "files, consoles), or set requires_pickling = False."
            )
            continue
        pickled.append((_name(callback), bytes(data)))
    if not pickled:
        return None
    return pickle.dumps(
        {"version": CALLBACKS_VERSION, "callbacks": pickled}, protocol=pickle.HIGHEST_PROTOCOL
    )


def loads_callbacks(data: bytes, warn: Callable[[str], None]) -> list[Any]:
    """The callbacks of a record; one that cannot be rebuilt here is left out, with a warning."""
    try:
        record = pickle.loads(data)  # noqa: S301 (the job's own directory, as its payload)
        version = record.get("version") if isinstance(record, dict) else None
    except Exception as exc:
        warn(f"the callbacks file cannot be read ({type(exc).__name__}: {exc}); no hook runs here")
        return []
    if version != CALLBACKS_VERSION:
        warn(
            f"the callbacks file has version {version}, this runner reads version "
            f"{CALLBACKS_VERSION}: no hook runs here (use the same slurm-sdk on both sides)"
        )
        return []
    callbacks = []
    for name, blob in record.get("callbacks", ()):
        try:
            callbacks.append(pickle.loads(blob))  # noqa: S301 (same file)
        except Exception as exc:
            warn(
                f"callback {name} cannot be rebuilt on this node ({type(exc).__name__}: {exc}): "
                "its hooks do not run here (is its module importable on the cluster?)"
            )
    return callbacks

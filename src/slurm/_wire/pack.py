"""A packed array's plan: which calls each Slurm array element runs (``pack.json``).

A packed array (``task.map(items, pack=K)``) has one Slurm element per K calls,
but every call keeps its own files under the call's index (``payloads/i.pkl``,
``logs/i.out``, ``results/i.pkl``...; see :mod:`slurm._wire.layout`). Element
``e`` runs calls ``e*K`` up to ``(e+1)*K - 1``, in order, ``parallel`` at a time.
The client writes this record once per job directory; the runner reads it (JSON,
never a pickle). A call the client runs again on its own (a retry, a resubmission)
is named by :data:`~slurm._wire.env.PACK_CALLS_VARIABLE` instead.
"""

from __future__ import annotations

import json

from slurm._wire.record import record
from slurm.errors import ResultError

__all__ = ["PACK_VERSION", "PackPlan"]

PACK_VERSION = 1


@record(frozen=True)
class PackPlan:
    """``calls`` calls, ``per_element`` to an array element, ``parallel`` of them at a time."""

    calls: int
    per_element: int
    parallel: int = 1
    version: int = PACK_VERSION

    @property
    def elements(self) -> int:
        """How many Slurm array elements run the calls."""
        return -(-self.calls // self.per_element)

    def calls_of(self, element: int) -> range:
        """The call indices element ``element`` runs, in order."""
        start = element * self.per_element
        return range(start, min(self.calls, start + self.per_element))

    def element_of(self, call: int) -> int:
        """The array element that runs call ``call``."""
        return call // self.per_element

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PackPlan:
        """Read a plan; anything but this version's record is a :class:`ResultError`."""
        try:
            fields = json.loads(text)
            if not isinstance(fields, dict) or fields.get("version") != PACK_VERSION:
                raise ValueError(f"not a pack record of version {PACK_VERSION}")
            plan = cls(**fields)
            if not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1
                for n in (plan.calls, plan.per_element, plan.parallel)
            ):
                raise ValueError("a count is not a whole number >= 1")
            return plan
        except (ValueError, TypeError) as exc:
            raise ResultError(
                f"This packed array's plan (pack.json) cannot be read ({exc}). It was written "
                "by another slurm-sdk version: use the same version on both sides, or submit "
                "the map again."
            ) from exc

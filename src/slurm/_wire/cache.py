"""The record of one cached call: which run made the result that a key stands for.

Under the submitting cluster's job base directory (the root a workflow's
children share, beside ``.index``)::

    ROOT/.result-cache/KEY.json   one CacheEntry, written when the call was submitted

An entry does not hold the result: it points at the job directory (and array
element) of the run that made it, whose ``result.json``/``result.pkl`` are read
with the same trust checks as any result. A key whose run has not finished, or
failed, is no hit. The record is JSON of a version; anything else read from
there is no entry at all (:class:`~slurm.errors.ResultError`), and nothing in
this module ever unpickles. Pure: no file is touched here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from slurm._wire.layout import JobPaths
from slurm.errors import ResultError

__all__ = ["CACHE_DIR", "CACHE_VERSION", "CacheEntry", "entry_name", "is_key"]

#: The directory of entries, under the root of the job base directory.
CACHE_DIR = ".result-cache"
#: Bumped when the record changes shape; other versions are read as a miss.
CACHE_VERSION = 1
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def is_key(text: str) -> bool:
    """A cache key: 64 lowercase hex digits (a SHA-256)."""
    return bool(_KEY_RE.match(text))


def entry_name(key: str) -> str:
    """The file name of ``key``'s entry."""
    return f"{key}.json"


@dataclass(frozen=True)
class CacheEntry:
    """A cached call: the key, and the run whose result it stands for.

    What ``job.cached`` holds for a call answered from the cache (``None`` for
    one that ran), and what ``slurm cache list`` and ``Cluster.cache`` show.

    Attributes:
        key: the SHA-256 of what the result depends on (see ``docs/caching.md``).
        task: the task's name.
        job_id: the Slurm id of the run that made the result (``123`` or ``123_4``);
            a call retried since ran on as another id (its attempts file says which).
        job_dir: that run's job directory.
        array_index: its element, when it ran in an array.
        created: when it was submitted (``time.time()``).
        sdk_version: the slurm-sdk version that wrote the entry.
        parts: the digests that make the key (``code``, ``arguments``, ``options``,
            ``packaging``), and the function's ``module.qualname`` as ``function``.
        version: :data:`CACHE_VERSION`.
    """

    key: str
    task: str
    job_id: str
    job_dir: str
    array_index: int | None
    created: float
    sdk_version: str
    parts: dict[str, str] = field(default_factory=dict)
    version: int = CACHE_VERSION

    @property
    def paths(self) -> JobPaths:
        """The files of the run that made the result."""
        return JobPaths(self.job_dir, self.array_index)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str = "") -> CacheEntry:
        """Read an entry; a record of another version, or one that is not an entry at all,
        is a :class:`ResultError` (the caller treats it as a miss and says why)."""
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("version") != CACHE_VERSION:
                raise ValueError(
                    f"a record of version {data.get('version')!r}, not {CACHE_VERSION} (written "
                    f"by slurm-sdk {data.get('sdk_version', '?')})"
                )
            entry = cls(**data)
            _check_types(entry)
            return entry
        except (ValueError, TypeError) as exc:
            raise ResultError(f"The cache entry {where or '(text)'} cannot be read: {exc}") from exc


def _check_types(entry: CacheEntry) -> None:
    strings = (entry.key, entry.task, entry.job_id, entry.job_dir, entry.sdk_version)
    if not all(isinstance(s, str) for s in strings) or not is_key(entry.key):
        raise ValueError("a field has the wrong type, or the key is not a SHA-256")
    if entry.array_index is not None and (
        not isinstance(entry.array_index, int) or entry.array_index < 0
    ):
        raise ValueError("array_index is not a whole number >= 0")
    if not isinstance(entry.created, int | float) or not isinstance(entry.parts, dict):
        raise ValueError("created or parts has the wrong type")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in entry.parts.items()):
        raise ValueError("parts must map names to strings")

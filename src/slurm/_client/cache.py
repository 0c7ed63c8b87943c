"""``ResultCache``: the cached calls of one job base directory.

A call of a task with ``cache=True`` gets a key (:mod:`slurm._client.cachekey`).
When the call is submitted, an entry (:class:`~slurm._wire.cache.CacheEntry`)
is written under the key, pointing at the job directory of that run; a later
call with the same key whose entry's run ended with a result is a *hit*: it gets
that run's result without a job. The entries live under the root of the job base
directory (``ROOT/.result-cache/``), the directory a workflow's children share
with the cluster that submitted the workflow, so they see each other's results.

An entry is a hit only if it is this user's own file in a private directory
(the same trust check as a result's, before anything is read), is a record of
this version written by this slurm-sdk version for this very key, points into
the root, and its run's outcome (JSON) says it returned and its result file is
private too. Anything else is a miss; a miss for a reason other than "not run
yet" or "it failed" is logged as a warning. Nothing here unpickles.

``slurm cache list|show|clear`` and ``Cluster.cache`` read and tidy the entries;
``slurm jobs prune`` keeps the job directories that entries with a result point
at (:meth:`ResultCache.kept_dirs`).
"""

from __future__ import annotations

import builtins
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slurm._wire.cache import CACHE_DIR, CacheEntry, entry_name, is_key
from slurm._wire.payload import Outcome
from slurm.errors import ConfigurationError, ResultError, SlurmError

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = ["CachedCall", "ResultCache", "sdk_version"]

logger = logging.getLogger("slurm.cache")


@functools.cache
def sdk_version() -> str:
    """The installed slurm-sdk's version (entries of another version are misses)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("slurm-sdk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class CachedCall:
    """One entry and the state of its run, as ``slurm cache list`` shows it.

    Attributes:
        entry: the entry.
        state: ``"done"`` (a hit), ``"failed"`` (the run raised: no hit),
            ``"no result"`` (not finished, or it ended without one), ``"gone"``
            (its job directory was removed), or ``"refused: ..."`` (why it is no hit).
    """

    entry: CacheEntry
    state: str

    @property
    def hit(self) -> bool:
        return self.state == "done"


class ResultCache:
    """The cache entries under one cluster's job base directory (``Cluster.cache``).

    Example::

        with Cluster.from_env() as cluster:
            for cached in cluster.cache.list():
                print(cached.entry.task, cached.entry.job_id, cached.state)
            cluster.cache.clear(older_than_days=30)
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def directory(self) -> str:
        """Where the entries are: ``ROOT/.result-cache``."""
        return f"{self._session.store.root}/{CACHE_DIR}"

    def path_of(self, key: str) -> str:
        return f"{self.directory}/{entry_name(key)}"

    # --- the submission's side -------------------------------------------------------
    def lookup(self, key: str) -> CacheEntry | None:
        """The entry of ``key`` when its run returned a result (a hit), else None."""
        found = self._read(key)
        if isinstance(found, str):
            if found:
                logger.warning("cache entry %s is not used (a miss): %s", key[:12], found)
            return None
        state = self._state(found)
        if state.startswith("refused"):
            logger.warning("cache entry %s is not used (a miss): %s", key[:12], state)
        return found if state == "done" else None

    def record(self, entry: CacheEntry) -> None:
        """Write ``entry`` (it replaces an earlier one of the same key)."""
        transport = self._session.transport
        transport.mkdir(self.directory, mode=0o700)
        transport.write_text(self.path_of(entry.key), entry.to_json())

    def unfinished(self, key: str, *, under: str) -> CacheEntry | None:
        """The entry of ``key`` when its run is in ``under`` and has no result yet (a call
        an earlier run of a restarted workflow submitted), else None."""
        found = self._read(key)
        if isinstance(found, str) or not found.job_dir.startswith(under.rstrip("/") + "/"):
            return None
        return found if self._state(found) == "no result" else None

    # --- reading -----------------------------------------------------------------------
    def _read(self, key: str) -> CacheEntry | str:
        """The entry, or why there is none usable (``""``: there is none at all)."""
        path = self.path_of(key)
        store = self._session.store
        try:  # read first (most keys have no entry), trusted only once checked
            text = self._session.transport.read_text(path)
            store.check_private(path, verb="use the cache entry")
        except FileNotFoundError:
            return ""
        except (ResultError, OSError) as exc:
            return str(exc)
        try:
            entry = CacheEntry.from_json(text, where=path)
        except ResultError as exc:
            return str(exc)
        if entry.key != key:
            return f"{path} holds the entry of another key ({entry.key[:12]}): it was altered"
        if entry.sdk_version != sdk_version():
            return (
                f"it was written by slurm-sdk {entry.sdk_version}, this is {sdk_version()}: "
                "the call runs again and its new result replaces it"
            )
        if not store.owns(entry.job_dir):
            return f"it points at {entry.job_dir!r}, outside {store.root}: refused"
        return entry

    def _state(self, entry: CacheEntry) -> str:
        """How the entry's run stands (see :class:`CachedCall`)."""
        paths = entry.paths
        transport = self._session.transport
        try:
            outcome = Outcome.from_json(transport.read_text(paths.outcome), job_id=entry.job_id)
        except FileNotFoundError:
            return "no result" if transport.exists(entry.job_dir) else "gone"
        except (ResultError, OSError) as exc:
            return f"refused: its outcome cannot be read ({exc})"
        if not outcome.ok:
            return "failed"
        try:
            self._session.store.check_private(paths.result, job_id=entry.job_id)
        except FileNotFoundError:
            return "no result"
        except ResultError as exc:
            return f"refused: {exc}"
        return "done"

    def list(self, *, task: str | None = None) -> list[CachedCall]:
        """Every entry (of ``task``, when given), newest first, with its run's state."""
        try:
            names = self._session.transport.list_dir(self.directory)
        except FileNotFoundError:
            return []
        found: list[CachedCall] = []
        for name in names:
            key = name.removesuffix(".json")
            if not name.endswith(".json") or not is_key(key):
                continue
            entry = self._read(key)
            if isinstance(entry, str):
                logger.warning("cache entry %s cannot be used: %s", key[:12], entry or "gone")
                continue
            if task is None or entry.task == task:
                found.append(CachedCall(entry, self._state(entry)))
        return sorted(found, key=lambda c: c.entry.created, reverse=True)

    def show(self, key: str) -> CachedCall:
        """The entry of ``key`` (or of the one key starting with it).

        Raises:
            ConfigurationError: no entry, or several, match.
        """
        matches = [c for c in self.list() if c.entry.key.startswith(key.lower())] if key else []
        if len(matches) != 1:
            what = "no entry" if not matches else f"{len(matches)} entries"
            raise ConfigurationError(
                f"{what} of the cache under {self.directory} match {key!r}; `slurm cache list` "
                "shows the keys (a unique prefix is enough)."
            )
        return matches[0]

    # --- tidying ---------------------------------------------------------------------
    def clear(
        self,
        *,
        keys: Sequence[str] = (),
        task: str | None = None,
        older_than_days: float | None = None,
        dry_run: bool = False,
    ) -> builtins.list[CachedCall]:
        """Remove entries: those of ``keys`` (unique prefixes), else all (of ``task``),
        only those written more than ``older_than_days`` ago when given. The job
        directories stay (``slurm jobs prune`` removes them once no entry needs them).
        Returns what was (or, with ``dry_run``, would be) removed.

        Raises:
            ConfigurationError: a negative age, or a key that matches no single entry.
        """
        if older_than_days is not None and (
            not isinstance(older_than_days, int | float) or older_than_days < 0
        ):
            raise ConfigurationError(
                f"older_than_days must be a number >= 0, got {older_than_days!r}."
            )
        chosen = [self.show(k) for k in keys] if keys else self.list(task=task)
        if older_than_days is not None:
            limit = time.time() - older_than_days * 86400
            chosen = [c for c in chosen if c.entry.created < limit]
        if chosen and not dry_run:
            paths = [self.path_of(c.entry.key) for c in chosen]
            self._session.transport.run(["rm", "-f", "--", *paths], check=True)
        return chosen

    def kept_dirs(self) -> builtins.list[str]:
        """The top-level job directories (under the job base directory) that entries with
        a result point at: pruning leaves them (and their index entries) alone."""
        base = self._session.store.base_dir
        kept: set[str] = set()
        try:
            cached = self.list()
        except SlurmError as exc:  # an unreadable cache must not let prune remove results
            raise ConfigurationError(
                f"prune: the cache under {self.directory} cannot be read ({exc}), so which "
                "job directories hold cached results is unknown; nothing was removed."
            ) from exc
        for call in cached:
            if call.hit and call.entry.job_dir.startswith(base + "/"):
                top = call.entry.job_dir[len(base) + 1 :].split("/", 1)[0]
                kept.add(f"{base}/{top}")
        return sorted(kept)

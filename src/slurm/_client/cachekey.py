"""The key of a cached call: what its result depends on, as one SHA-256.

A call of a task with ``cache=True`` is looked up by a key made of (see
``docs/caching.md`` for the user's view):

- ``function``: the function's module and qualified name, and whether it is a workflow;
- ``code``: the function's own source; for a function that travels by value (from
  ``__main__`` or a notebook) also the source of the functions and classes of the
  same module its code names, and the simple constants (numbers, strings...) it
  reads from there; and the content of every local module the call needs, as the
  shipping closure finds them (:mod:`slurm._client.packaging.closure`: the task's
  module, what it imports, transitively, and the modules of its arguments' types);
- ``arguments``: a stable hash of the pickled arguments, bound to the function's
  parameters (``f(1, b=2)`` and ``f(1, 2)`` are the same call; defaults filled
  in), a ``Job`` argument as the run it names; or the hash of what the task's
  ``cache_key=`` function returns for them;
- ``options``: the values of the options named by ``cache_on=`` (default none),
  after the cluster's defaults are merged in;
- ``packaging``: the interpreter the job runs (a built environment's path holds its
  content hash) and the container image, if any.

Not in the key: the other options (partition, time, mem...), the installed
libraries the code imports (except as part of a built environment), files the
function reads, the time, the machine. Everything here is computed on the
client, before anything is written.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import json
import pickle
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from slurm._client.packaging.closure import call_roots, code_names, find_closure
from slurm._client.tasks import SubmittedTask
from slurm._slurm.options import normalize_option_name
from slurm._wire.journal import fingerprint
from slurm._wire.payload import Call, job_ref_id
from slurm._wire.record import record
from slurm.errors import ConfigurationError

__all__ = ["CachePolicy", "KeyMaker", "cache_policy", "stable_digest"]

_KEY_FORMAT = b"slurm-sdk cache key 1\n"
_SIMPLE = (int, float, complex, str, bytes, bool, type(None))
_DEPTH = 8  # how far the helpers of a by-value function are followed


@record(frozen=True)
class CachePolicy:
    """A task's ``cache=True`` with its ``cache_key=`` function and ``cache_on=`` names."""

    key_fn: Callable[..., Any] | None = None
    on: tuple[str, ...] = ()


def cache_policy(task: SubmittedTask, merged: Mapping[str, Any]) -> CachePolicy | None:
    """The task's caching, from its options merged over the cluster's (None: off).

    Raises:
        ConfigurationError: ``cache_key=`` or ``cache_on=`` without ``cache=True``.
    """
    if not merged.get("cache"):
        stray = [name for name in ("cache_key", "cache_on") if merged.get(name)]
        if stray:
            raise ConfigurationError(
                f"{task.name}(): {', '.join(stray)}= only take effect with cache=True; nothing "
                "was submitted. Add cache=True to the task's options, or drop them."
            )
        return None
    on = merged.get("cache_on") or ()
    names = (on,) if isinstance(on, str) else tuple(on)
    return CachePolicy(merged.get("cache_key"), tuple(normalize_option_name(n) for n in names))


@functools.cache
def _stable_pickler() -> type[Any]:
    import cloudpickle

    class StablePickler(cloudpickle.Pickler):  # type: ignore[misc]
        """cloudpickle, with a Job as the run it names (never its own object)."""

        def __init__(self, file: io.BytesIO) -> None:
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

        def persistent_id(self, obj: Any) -> Any:
            return job_ref_id(obj)

    return StablePickler


class _SortedSet(tuple[Any, ...]):
    """A set's items in a fixed order (the pickled stand-in of a set, never unpickled)."""

    __slots__ = ()


def _canonical(value: Any, depth: int = 0) -> Any:
    """``value`` with every set (inside lists, tuples and dicts) as its items sorted by their
    pickled bytes: a set of strings iterates in an order that changes with the process's
    ``PYTHONHASHSEED``. Sets held by other objects are pickled as they iterate."""
    if depth > 50:
        return value
    kind = type(value)
    if kind in (set, frozenset):
        items = [_canonical(item, depth + 1) for item in value]
        return (kind.__name__, _SortedSet(sorted(items, key=stable_bytes)))
    if kind is list:
        return [_canonical(item, depth + 1) for item in value]
    if kind is tuple:
        return tuple(_canonical(item, depth + 1) for item in value)
    if kind is dict:
        return {_canonical(k, depth + 1): _canonical(v, depth + 1) for k, v in value.items()}
    return value


def stable_bytes(value: Any) -> bytes:
    """``value`` pickled so that equal values give equal bytes across processes (sets in
    containers sorted; functions and local classes by value, as cloudpickle writes them;
    a ``Job`` as the ids and result file of its run)."""
    buffer = io.BytesIO()
    _stable_pickler()(buffer).dump(_canonical(value))
    return buffer.getvalue()


def stable_digest(value: Any) -> str:
    """The SHA-256 of :func:`stable_bytes`."""
    return hashlib.sha256(stable_bytes(value)).hexdigest()


def _digest(*parts: bytes | str) -> str:
    return fingerprint(*parts, size=64)


def _source(obj: Any) -> str:
    """The source text of a function or class, else what its code object holds."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if isinstance(code, types.CodeType):
            return repr(_code_summary(code))
        return f"<no source: {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}>"


def _code_summary(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(
        _code_summary(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return (code.co_code, consts, code.co_names, code.co_varnames)


def _by_value_parts(fn: Any, seen: set[int], depth: int = 0) -> list[str]:
    """For a function that travels by value: the source of the functions and classes of
    its own module that its code names (followed a few levels), and the simple
    constants it reads from there."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType) or depth > _DEPTH:
        return []
    scope: Mapping[str, Any] = getattr(fn, "__globals__", {})
    module = getattr(fn, "__module__", None)
    parts: list[str] = []
    values = [(name, scope[name]) for name in sorted(code_names(code)) if name in scope]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            values.append(("<cell>", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    for default in (getattr(fn, "__defaults__", None) or ()) + tuple(
        (getattr(fn, "__kwdefaults__", None) or {}).values()
    ):
        values.append(("<default>", default))
    for name, value in values:
        if isinstance(value, _SIMPLE) or (
            isinstance(value, tuple) and all(isinstance(v, _SIMPLE) for v in value)
        ):
            parts.append(f"{name}={value!r}")
        elif (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == module:
            if id(value) in seen:
                continue
            seen.add(id(value))
            parts.append(f"{name}:{_source(value)}")
            parts.extend(_by_value_parts(value, seen, depth + 1))
    return parts


class KeyMaker:
    """The keys of one submission's calls (the closure is found once per set of roots).

    Args:
        task: the task.
        policy: its :class:`CachePolicy`.
        options: its options merged over the cluster's (``cache_on`` names are read here).
        python: the interpreter the job runs on the cluster (for :meth:`key`).
        image: the container image it runs in, if any.

    :meth:`partial` and :meth:`complete` make a key in two steps, the packaging last.
    """

    def __init__(
        self,
        task: SubmittedTask,
        policy: CachePolicy,
        options: Mapping[str, Any],
        *,
        python: str = "",
        image: str | None = None,
    ) -> None:
        self.task = task
        self.python, self.image = python, image
        self.policy = policy
        fn = task.unwrapped
        self.function = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"
        self._own_code = self._function_code()
        self._closures: dict[frozenset[str], str] = {}
        chosen = {name: options.get(name) for name in policy.on}
        self.options = _digest(json.dumps(chosen, sort_keys=True, default=repr))

    def _function_code(self) -> str:
        fn = self.task.unwrapped
        parts = [_source(fn)]
        if self.task.reference_module is None:
            parts += _by_value_parts(fn, {id(fn)})
        return _digest(*parts)

    def _closure_digest(self, values: Iterable[Any]) -> str:
        roots = frozenset(call_roots(self.task.unwrapped, self.task.reference_module, values))
        found = self._closures.get(roots)
        if found is None:
            found = self._closures[roots] = find_closure(roots).digest()
        return found

    def arguments(self, call: Call) -> str:
        """The digest of the call's arguments (or of what ``cache_key=`` makes of them).

        Raises:
            ConfigurationError: an argument (or the ``cache_key=`` answer) cannot be
                pickled to stable bytes, or ``cache_key=`` raised.
        """
        name = self.task.name
        if self.policy.key_fn is not None:
            try:
                chosen = self.policy.key_fn(*call.args, **call.kwargs)
            except Exception as exc:
                raise ConfigurationError(
                    f"{name}(): its cache_key= function raised {type(exc).__name__}: {exc}. "
                    "Nothing was submitted. It is called with the call's arguments and must "
                    "return what identifies the result (a string, a tuple of values)."
                ) from exc
            return _digest("cache_key", self._stable(chosen, "what cache_key= returned"))
        digests: list[str] = []
        for label, value in self.task.call_arguments(call.args, call.kwargs):
            digests += [label, self._stable(value, f"argument {label!r}")]
        return _digest("arguments", *digests)

    def _stable(self, value: Any, what: str) -> str:
        try:
            return stable_digest(value)
        except Exception as exc:
            raise ConfigurationError(
                f"{self.task.name}(): {what} ({type(value).__name__}) cannot be hashed for "
                f"cache=True: it cannot be pickled ({type(exc).__name__}: {exc}), so no stable "
                "key can be made of it. Nothing was submitted. Pass cache_key=, a function of "
                "the call's arguments returning what identifies the result (for an open file, "
                "its path; for a lock, nothing), e.g. cache_key=lambda f, n: (f.name, n); or "
                "leave cache off for this task."
            ) from exc

    def partial(self, call: Call) -> dict[str, str]:
        """Every part of the call's key but the packaging (what is known before it is
        prepared): an argument that cannot be hashed fails here, before packaging runs."""
        values = [*call.args, *call.kwargs.values()]
        return {
            "function": self.function,
            "workflow": str(self.task.is_workflow),
            "code": _digest(self._own_code, self._closure_digest(values)),
            "arguments": self.arguments(call),
            "options": self.options,
        }

    @staticmethod
    def complete(
        partial: Mapping[str, str], *, python: str, image: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """The key of a call from its :meth:`partial` parts and the packaging: the interpreter
        the job runs and its container image; and every part it is made of."""
        parts = {**partial, "packaging": _digest(python, image or "")}
        flat = [item for pair in sorted(parts.items()) for item in pair]
        return _digest(_KEY_FORMAT, *flat), parts

    def key(self, call: Call) -> tuple[str, dict[str, str]]:
        """The call's key and the digests it is made of."""
        return self.complete(self.partial(call), python=self.python, image=self.image)

    def keys(self, calls: Sequence[Call]) -> list[tuple[str, dict[str, str]]]:
        """:meth:`key` of each call, in order (every argument is checked before any key)."""
        partials = [self.partial(call) for call in calls]
        return [self.complete(p, python=self.python, image=self.image) for p in partials]

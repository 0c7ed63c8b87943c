"""Did a run make progress? What its checkpoint callbacks wrote, as one fingerprint.

At Slurm's time-limit warning the runner requeues a call that registered a
checkpoint (``on_requeue``), so that the next run resumes from it. A call that
never gets further (stuck before its first step, a checkpoint that always
saves the same state, a callback that fails) would be requeued and stopped at
the same limit again and again. So the runner records, in the run log, a
fingerprint of what the callbacks produced, and a requeued run whose callbacks
produced the same fingerprint as the run before is not requeued again: it ends
in ``TIMEOUT`` (``no-progress`` in the run log says why).

**What counts as progress**, the fingerprint of one warning:

- every file the callbacks wrote or renamed into place while they ran (seen by
  an audit hook: ``open`` for writing, ``os.rename``/``os.replace``, links),
  that still exists after them: its path and a hash of its content (a file
  that is no longer there, a temporary renamed away, is left out: its name may
  differ every run; so is the bytecode Python writes under ``__pycache__``);
- every callback's return value (its ``repr``), or the type of the exception
  it raised.

Same fingerprint: nothing new was written. Rewriting the same content is no
progress; a checkpoint holding a step counter or a timestamp always is.
Writes the hook cannot see (a C library writing by itself, another process, a
thread that goes on after the callbacks returned) do not count: a callback may
then return how far it got (``on_requeue(lambda: save(state) or state.step)``).
Content beyond ``HASH_BUDGET`` bytes in all is fingerprinted by size and
modification time instead (a rewrite then counts as progress): the hash must
fit in the warning's grace.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Sequence

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = ["HASH_BUDGET", "fingerprint", "outcome_text", "start_watching", "stop_watching"]

#: Bytes of file content hashed per fingerprint; larger files count by size and mtime.
HASH_BUDGET = 1 << 30
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_MAX_FILES = 10_000

_written: list[str] | None = None  # the paths seen while watching; None: not watching
_installed = False


def _path(value: Any) -> str | None:
    if isinstance(value, int):  # a file descriptor: opened (and seen) before
        return None
    try:
        return os.path.abspath(os.fsdecode(value))
    except (TypeError, ValueError):
        return None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The process's audit hook: cheap unless a watch is on."""
    if _written is None:
        return
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        writes = (
            any(c in mode for c in "wax+")
            if isinstance(mode, str)
            else isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        )
        target = _path(path) if writes else None
    elif event in ("os.rename", "os.link", "os.symlink") and len(args) >= 2:
        target = _path(args[1])
    else:
        return
    # A module imported for the first time writes its bytecode: not the task's progress.
    if target is not None and "__pycache__" not in target and len(_written) < _MAX_FILES:
        _written.append(target)


def start_watching() -> None:
    """Record the files written from now on (the audit hook is added once, for good)."""
    global _written, _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True
    _written = []


def stop_watching() -> list[str]:
    """Stop recording; the paths written since :func:`start_watching`, in order."""
    global _written
    seen, _written = _written or [], None
    return seen


def outcome_text(value: object = None, *, raised: BaseException | None = None) -> str:
    """One callback's outcome as it enters the fingerprint."""
    if raised is not None:
        return f"raised {type(raised).__module__}.{type(raised).__qualname__}"
    try:
        return f"returned {value!r}"
    except Exception:  # an object whose repr fails: unlike any other run's
        return f"returned <{type(value).__qualname__} at {id(value):x}>"


def _files(paths: Iterable[str]) -> list[str]:
    """The regular files among ``paths`` (a directory: the files under it), sorted."""
    found: set[str] = set()
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # gone again: a temporary
        if stat.S_ISREG(mode):
            found.add(path)
        elif stat.S_ISDIR(mode):
            for root, _, names in os.walk(path):
                found.update(os.path.join(root, n) for n in names)
                if len(found) > _MAX_FILES:
                    break
    return sorted(found)[:_MAX_FILES]


def fingerprint(
    outcomes: Sequence[str], written: Iterable[str], *, budget: int = HASH_BUDGET
) -> str:
    """The fingerprint of one warning's callbacks: their outcomes and the files they wrote.

    Example::

        >>> fingerprint(["returned None"], []) == fingerprint(["returned None"], [])
        True
    """
    import hashlib  # only at a time-limit warning: the job's start stays light

    digest = hashlib.sha256()
    for text in outcomes:
        digest.update(b"outcome\0" + text.encode("utf-8", "replace") + b"\0")
    left = budget
    for path in _files(written):
        digest.update(b"file\0" + os.fsencode(path) + b"\0")
        try:
            info = os.stat(path)
            if info.st_size > left:
                digest.update(f"size={info.st_size} mtime={info.st_mtime_ns}".encode())
                continue
            left -= info.st_size
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            digest.update(f"unreadable {exc.errno}".encode())
    return digest.hexdigest()[:16]

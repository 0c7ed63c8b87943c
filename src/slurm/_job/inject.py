"""Which parameters of a task the runner fills in: the job and workflow contexts.

A parameter is filled in when its annotation is a type that carries
``__slurm_inject__`` (``"job"``: :class:`~slurm.JobContext`, ``"workflow"``:
:class:`~slurm.WorkflowContext`), or ``Optional`` of one; in a workflow, a
parameter named ``ctx`` gets the workflow context too. The marker, not an
import, ties the two together: the job side never imports the API layer.
"""

from __future__ import annotations

import types

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["injected_parameters"]

#: An annotation left as a string (an unresolvable forward reference) is matched by name.
_BY_NAME = {"JobContext": "job", "WorkflowContext": "workflow"}


def _context_kind(annotation: Any) -> str | None:
    """``"job"`` or ``"workflow"`` when ``annotation`` is that context type (or Optional of it).

    The type itself is matched, not the end of its name: ``JobContext | None``
    and ``Optional[JobContext]`` are injected, a class named ``MyJobContext``
    is not.
    """
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        for prefix in ("typing.Optional[", "Optional["):
            if text.startswith(prefix) and text.endswith("]"):
                text = text[len(prefix) : -1]
        names = {part.rsplit(".", 1)[-1] for part in text.split("|") if part != "None"}
        kinds = {_BY_NAME.get(name) for name in names}
        return kinds.pop() if len(kinds) == 1 and len(names) == 1 else None
    import typing

    unions = (typing.Union, types.UnionType)
    members = typing.get_args(annotation) if typing.get_origin(annotation) in unions else ()
    candidates = {m for m in members if m is not type(None)} if members else {annotation}
    if len(candidates) != 1:
        return None
    (only,) = candidates
    kind = only.__dict__.get("__slurm_inject__") if isinstance(only, type) else None
    return kind if kind in ("job", "workflow") else None


def injected_parameters(fn: Callable[..., Any], *, workflow: bool) -> dict[str, str]:
    """Parameters the runner fills in: name -> ``"job"`` or ``"workflow"``.

    A parameter annotated ``JobContext`` (or ``JobContext | None``) gets the
    job context, one annotated ``WorkflowContext`` (or, in a workflow, named
    ``ctx``) the workflow context.
    """
    if not _may_inject(fn, workflow=workflow):
        return {}
    import inspect  # what reads signatures and annotations: a job needs them only here
    import typing

    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    found: dict[str, str] = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        kind = _context_kind(hints.get(name, parameter.annotation))
        if kind == "workflow" or (kind is None and workflow and name == "ctx"):
            found[name] = "workflow"
        elif kind == "job":
            found[name] = "job"
    return found


def _may_inject(fn: Callable[..., Any], *, workflow: bool) -> bool:
    """Whether ``fn`` could have a parameter to fill in, read from its code and annotations
    without :mod:`inspect` and :mod:`typing` (a job imports them only when it could).

    False only when sure: a plain function whose parameters are not ``ctx`` (in a
    workflow) and whose annotations name no context, neither as text nor as a type.
    """
    code = getattr(fn, "__code__", None)
    annotations = getattr(fn, "__annotations__", None)
    if code is None or not isinstance(annotations, dict) or hasattr(fn, "__wrapped__"):
        return True
    if workflow and "ctx" in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
        return True
    namespace = getattr(fn, "__globals__", {})
    for name, annotation in annotations.items():
        if name == "return":
            continue
        if isinstance(annotation, str):
            for word in _words(annotation):
                found = namespace.get(word)
                if "Context" in word or (
                    isinstance(found, type) and "__slurm_inject__" in found.__dict__
                ):
                    return True
        elif isinstance(annotation, type):
            if "__slurm_inject__" in annotation.__dict__:
                return True
        elif not isinstance(annotation, types.GenericAlias):  # list[int] is never a context
            return True
    return False


def _words(text: str) -> list[str]:
    """The identifiers in ``text`` (without :mod:`re`, which a job need not import)."""
    words: list[str] = []
    current: list[str] = []
    for char in text + " ":
        if char.isalnum() or char == "_":
            current.append(char)
            continue
        if current and not current[0].isdigit():
            words.append("".join(current))
        current = []
    return words

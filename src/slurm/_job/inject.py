"""Which parameters of a task the runner fills in: the job and workflow contexts.

A parameter is filled in when its annotation is a type that carries
``__slurm_inject__`` (``"job"``: :class:`~slurm.JobContext`, ``"workflow"``:
:class:`~slurm.WorkflowContext`), or ``Optional`` of one; in a workflow, a
parameter named ``ctx`` gets the workflow context too. The marker, not an
import, ties the two together: the job side never imports the API layer.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["injected_parameters"]

_UNIONS = (typing.Union, types.UnionType)
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
    members = typing.get_args(annotation) if typing.get_origin(annotation) in _UNIONS else ()
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

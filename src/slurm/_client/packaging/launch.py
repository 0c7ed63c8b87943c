"""What a job runs: the task's interpreter, and the local source first on its ``sys.path``.

:func:`launch_for` is the one call submission makes. It honours a task's own
``python=`` and ``packaging=`` (see :func:`slurm._client.packaging.interpreter_settings`),
and ships the local modules and packages the call needs (see
:mod:`slurm._client.packaging.closure` and :mod:`slurm._client.packaging.sources`): the job
gets their directory in ``SLURM_SDK_CODE_DIR``, Python starts with ``-P`` (the
job's working directory is not on ``sys.path``) and the runner puts exactly
that directory first on ``sys.path``.
Inside a workflow running such source, the tasks it submits get the same
directory. The installed distributions that code imports (numpy, pandas...)
are added to the job's environment, pinned to the versions installed here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slurm._client import packaging
from slurm._client.packaging import (
    envs_dir_for,
    interpreter_settings,
    provided_names,
    ships_sources,
    uses_environment,
)
from slurm._client.packaging.closure import Closure, call_roots, find_closure
from slurm._client.packaging.sources import ShippedSources, ensure_sources, sources_dir
from slurm._wire.env import CODE_DIR_VARIABLE
from slurm._wire.record import field, record

if TYPE_CHECKING:
    from slurm._client.session import Session
    from slurm._client.tasks import SubmittedTask
    from slurm._wire.payload import Call

__all__ = ["Launch", "launch_for", "ship"]


@record(frozen=True)
class Launch:
    """How one submission's job starts.

    Attributes:
        python: The interpreter on the cluster.
        env: Variables the batch script exports (the shipped source's directory).
        closure: The local source the call needs, shipped by :func:`ship` once the
            call is known to be submittable (nothing is written before).
        code_dir: Where :func:`ship` puts it.
        python_version: ``(major, minor)`` of that Python, when the preflight told.
    """

    python: str
    env: dict[str, str] = field(default_factory=dict)
    closure: Closure | None = None
    code_dir: str = ""
    python_version: tuple[int, int] | None = None

    @property
    def command(self) -> list[str]:
        """The interpreter and its flags: ``-P`` keeps the job's working directory off
        ``sys.path`` from the very start (Python >= 3.11, as the SDK), whether source
        was shipped or not: a stray ``cloudpickle.py`` there is never imported."""
        return [self.python, "-P"]


def _arguments(calls: Sequence[Call]) -> Iterator[Any]:
    for call in calls:
        yield from call.args
        yield from call.kwargs.values()


def launch_for(
    session: Session,
    task: SubmittedTask,
    sdk_options: Mapping[str, Any],
    calls: Sequence[Call],
    *,
    also: Sequence[Any] = (),
) -> Launch:
    """The interpreter and environment for one submission of ``task``; the modules of the
    objects ``also`` (the callbacks that travel with the job) are shipped as the call's.

    Runs the preflight and builds the environment on first use of these
    settings; ships the call's local source when it is not on the cluster yet.

    Raises:
        ConfigurationError: As :func:`slurm._client.packaging.interpreter_for`, or the
            source could not be shipped.
    """
    settings = interpreter_settings(
        session, sdk_options.get("python"), sdk_options.get("packaging")
    )

    def version() -> tuple[int, int] | None:
        return packaging.python_version_of(session, settings)

    inherited = os.environ.get(CODE_DIR_VARIABLE)
    if not ships_sources(session, settings) or (inherited and session.backend_type == "local"):
        python = packaging.interpreter_for(session, settings)
        # In a workflow that runs shipped source, its tasks run the same snapshot.
        if inherited and session.backend_type == "local" and settings.spec.mode != "none":
            return Launch(python, {CODE_DIR_VARIABLE: inherited}, python_version=version())
        return Launch(python, python_version=version())
    # The preflight runs here, before anything else. Locally, an interpreter is used as
    # it is unless packaging="wheel" asks for an environment, or the nodes cannot start
    # it (see packaging._plan and packaging._fallback).
    spec = settings.spec
    as_is = session.backend_type == "local" and (
        spec.mode not in ("wheel", "auto") or bool(settings.python)
    )
    built = False if as_is else uses_environment(session, settings)
    roots = call_roots(task.unwrapped, task.reference_module, [*_arguments(calls), *also])
    closure = find_closure(roots, exclude=provided_names(session, settings) if built else ())
    # The installed distributions the call's code imports join the environment, and
    # those the callbacks' node-side hooks say they import.
    wanted = [*closure.installed, *(m for obj in also for m in getattr(obj, "job_modules", ()))]
    extras: tuple[str, ...] = ()
    if built:  # dependency metadata: loaded only for a built environment
        from slurm._client.packaging.deps import requirements_for_modules

        extras = requirements_for_modules(wanted)
    python = packaging.interpreter_for(session, settings, extras)
    if not closure.units:
        return Launch(python, python_version=version())
    code_dir = f"{envs_dir_for(session, settings.spec)}/.code"
    env = {CODE_DIR_VARIABLE: sources_dir(code_dir, closure)}
    return Launch(python, env, closure, code_dir, version())


def ship(session: Session, launch: Launch) -> ShippedSources | None:
    """Put the launch's local source on the cluster (once per content hash and session).

    Raises:
        ConfigurationError: the upload or unpacking failed.
    """
    if launch.closure is None:
        return None
    known = session.shipped_sources
    return ensure_sources(session.transport, launch.code_dir, launch.closure, known)

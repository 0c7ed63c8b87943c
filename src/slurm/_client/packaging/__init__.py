"""How the user's code reaches the cluster, and which interpreter runs it there.

``Cluster(packaging=...)`` chooses, and :func:`interpreter_for` applies it the
first time a cluster needs its interpreter (its first submission), after the
preflight (:mod:`slurm._client.preflight`):

- ``Cluster(python="/path/to/venv/bin/python")``: that interpreter, as it is
  (it must import ``slurm._job.entry``). No packaging.
- the local backend (already on the cluster): this very interpreter. No packaging.
- ``packaging="none"``: ``python3`` on the cluster (or ``{"type": "none",
  "python": ...}``) as it is; you installed your code and slurm-sdk there.
- ``packaging="auto"`` (the default over SSH) or ``"wheel"``: wheels of your
  project (the nearest ``pyproject.toml`` above your ``__main__`` script, or
  the working directory) and of the SDK are built with ``uv build``; their
  dependencies are collected as wheels for the cluster; an environment keyed
  by the hash of all of it is created once on the cluster and reused by every
  job and run with the same key (see :mod:`slurm._client.packaging.remote`).

Over SSH, unless ``packaging="none"``, the local modules and packages a call
needs and no wheel provides travel as source (:mod:`slurm._client.packaging.closure`,
:mod:`slurm._client.packaging.sources`, applied per submission by
:mod:`slurm._client.packaging.launch`). A task's own ``python=``/``packaging=``
options choose for that task (:func:`interpreter_settings`); each distinct setting is
prepared once per cluster.

``packaging="container"`` (or ``{"type": "container", "dockerfile": ...,
"registry": ...}``) also builds an image from a Dockerfile, pushes it and runs
every task in it (:mod:`slurm._client.packaging.container`, :mod:`slurm._client.packaging.images`);
the code reaches the container as with ``"auto"``.

The dict form takes these keys (all optional)::

    packaging={
        "type": "wheel",                     # "auto" | "wheel" | "none"
        "python": "/opt/py311/bin/python3",  # base interpreter for the env (default python3)
        "python_version": "3.12",            # or: that Python, found or installed there
        "project": "/path/to/project",       # or None: ship only the SDK
        "env_dir": "/scratch/me/envs",       # default {job_base_dir}/.envs
        "lock_timeout": 1800,                # seconds to wait for another creator
        "installer": "auto",                 # "uv" if the cluster has it, else "pip"
        "dependencies": ["rich>=13"],        # more requirements for the environment
        "extras": ["gpu"],                   # the project's extras to install too
        "extra_index_url": "https://pypi.example.org/simple",  # or a list; file:// too
        "upgrade_pip": True,                 # the environment gets a current pip
        "env": {"UV_PYTHON_INSTALL_MIRROR": "file:///shared/mirror"},  # for uv/pip there
    }

``extra_index_url`` is asked where the dependency wheels are collected (this
machine: ``uv pip compile`` and ``pip download``) and by the cluster's install
when the offline one lacks something; it is part of the environment's key.
``upgrade_pip`` adds ``pip`` to the collected dependencies: the environment
gets a current pip (shipped as a wheel, installed offline) whichever installer
makes it.

``python_version`` (the earlier SDK's key) asks for that Python on the cluster:
``python3.X`` on its ``PATH``, else one ``uv python find`` finds, else one ``uv
python install`` installs under the environments directory
(:mod:`slurm._client.packaging.pythons`); ``env`` is the environment of the
commands that find or install it and create the environment there (uv's and
pip's own variables).

The earlier SDK's other spellings are read too: ``"inherit"`` is ``"auto"`` (a
workflow's tasks run with what the workflow has), ``build_tool`` is ``installer``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slurm._client.preflight import Finding, NodeCheck, PreflightReport, run_preflight
from slurm._client.session import InterpreterState
from slurm._slurm import probe
from slurm._slurm.packaging import DISCOVER, PackagingSpec, parse_spec
from slurm._wire.env import CODE_DIR_VARIABLE
from slurm._wire.record import record, replace
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._client.packaging.project import Project
    from slurm._client.packaging.pythons import FoundPython
    from slurm._client.packaging.remote import Environment
    from slurm._client.session import Session

# Building environments (wheels, dependencies, pyproject.toml, remote installs) is imported
# where it is used: a cluster that runs jobs with an interpreter as it is (the local backend,
# python=, packaging="none") never loads it, and its submissions start ~20 ms sooner.

__all__ = [
    "InterpreterSettings",
    "PackagingSpec",
    "diagnose",
    "environment_for",
    "envs_dir_for",
    "interpreter_for",
    "interpreter_settings",
    "parse_spec",
    "preflight_for",
    "provided_names",
    "python_version_of",
    "ships_sources",
    "uses_environment",
]

logger = logging.getLogger(__name__)


@record(frozen=True)
class InterpreterSettings:
    """Which interpreter and packaging one kind of job uses: the cluster's, or a task's own."""

    python: str | None
    spec: PackagingSpec


# Builds on this client are serialised: two clusters in one process build once.
_build_lock = threading.Lock()


def interpreter_settings(
    session: Session, python: Any = None, packaging: Any = None
) -> InterpreterSettings:
    """The settings a job uses: a task's ``python=``/``packaging=`` win over the cluster's.

    A task's ``python=`` runs that interpreter (packaged per the task's, else the
    cluster's, ``packaging``); a task's ``packaging=`` alone replaces the
    cluster's ``python=`` and ``packaging=`` both. ``python=`` with
    ``packaging="wheel"`` makes it the base interpreter of the environment
    (nothing is ignored); with ``"auto"`` or ``"none"`` it runs as it is.

    Raises:
        ConfigurationError: ``packaging`` is not understood or ``python`` is not a path.
    """
    if python is not None and (not isinstance(python, str | Path) or not str(python)):
        raise ConfigurationError(
            f"python={python!r}: give the path of an interpreter on the cluster as a string."
        )
    if python:
        chosen = packaging if packaging is not None else session.packaging
        return _combined(str(python), parse_spec(chosen))
    if packaging is not None:
        return InterpreterSettings(None, parse_spec(packaging))
    return _combined(session.settings.python, parse_spec(session.packaging))


def _combined(python: str | None, spec: PackagingSpec) -> InterpreterSettings:
    if python and spec.mode == "wheel":
        return InterpreterSettings(None, replace(spec, python=python))
    return InterpreterSettings(python, spec)


def _state(session: Session, settings: InterpreterSettings | None = None) -> InterpreterState:
    """What this session knows of ``settings`` (its own interpreter, by default)."""
    settings = settings or interpreter_settings(session)
    with session.interpreters_lock:
        state = session.interpreters.get(settings)
        if state is None:
            state = session.interpreters[settings] = InterpreterState()
        return state


def interpreter_for(
    session: Session, settings: InterpreterSettings | None = None, extras: tuple[str, ...] = ()
) -> str:
    """The interpreter that runs ``cluster``'s jobs; the first call checks and prepares.

    The first call runs the preflight (one command on the cluster) and, when
    packaging applies, builds and ships the environment; later calls return
    the same answer at once. ``settings`` (from :func:`interpreter_settings`) are a
    task's own; by default the cluster's. ``extras`` (``name==version``) are
    installed in the environment too (what shipped local source imports); an
    interpreter used as it is must have them already.

    Raises:
        ConfigurationError: The preflight found problems (all listed), the
            cluster's Python version differs from this one, or the
            environment cannot be built.
    """
    settings = settings or interpreter_settings(session)
    state = _state(session, settings)
    with state.lock:
        what, python = _checked(session, settings, state)
        if what == "as-is":
            return python
        environment = state.environments.get(extras)
        if environment is None:
            assert state.report is not None  # noqa: S101 (set by _checked above; for mypy)
            environment = _environment(session, settings.spec, state.report, extras)
            state.environments[extras] = environment
        return environment.python


def uses_environment(session: Session, settings: InterpreterSettings) -> bool:
    """Whether these settings run jobs in a built environment (runs the preflight first).

    Raises:
        ConfigurationError: As :func:`interpreter_for`.
    """
    state = _state(session, settings)
    with state.lock:
        return _checked(session, settings, state)[0] == "env"


def environment_for(
    session: Session, settings: InterpreterSettings | None = None, extras: tuple[str, ...] = ()
) -> Environment | None:
    """The environment ``cluster`` runs jobs in, ``None`` when no packaging applies."""
    settings = settings or interpreter_settings(session)
    interpreter_for(session, settings, extras)
    return _state(session, settings).environments.get(extras)


def provided_names(session: Session, settings: InterpreterSettings) -> frozenset[str]:
    """Top-level modules the environment's project wheel installs (they need no shipping)."""
    state = _state(session, settings)
    with state.lock:
        if state.provided is None:
            from slurm._client.packaging.wheels import build_project, wheel_top_levels

            with _build_lock:
                project = _project(settings.spec)
                wheel = build_project(project) if project is not None else None
            state.provided = wheel_top_levels(wheel.path) if wheel else frozenset()
        return state.provided


def python_version_of(session: Session, settings: InterpreterSettings) -> tuple[int, int] | None:
    """``(major, minor)`` of the Python these settings run on the cluster, once its
    preflight has run (None before, or when nothing was checked)."""
    report = _state(session, settings).report
    return report.python.minor if report is not None and report.python is not None else None


def ships_sources(session: Session, settings: InterpreterSettings) -> bool:
    """Whether local source travels with jobs: unless ``packaging="none"``, on either
    backend. Locally too, so that a job never depends on the nodes seeing the client's
    directories (a checkout under ``/tmp``) and never sees code edited after submission."""
    del session  # the same answer on every backend
    return settings.spec.mode != "none"


def preflight_for(session: Session) -> PreflightReport | None:
    """The preflight report of ``cluster``'s first use, ``None`` before it."""
    return _state(session).report


def _plan(session: Session, settings: InterpreterSettings) -> tuple[str, str, tuple[str, ...]]:
    """(what, interpreter to check, modules it must import), what in {"as-is", "env"}."""
    spec = settings.spec
    explicit = settings.python
    if explicit:
        same = session.backend_type == "local" and explicit == sys.executable
        return "as-is", explicit, () if same else ("slurm.runner",)
    this_one = spec.python_version is None or _matches(_this_version(), spec.python_version)
    if session.backend_type == "local" and spec.mode != "wheel" and this_one:
        return "as-is", sys.executable, ()
    base = spec.python or _requested(session, spec) or "python3"
    if spec.mode == "none":
        return "as-is", base, ("slurm.runner",)
    return "env", base, ("ensurepip",)


def _this_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def _matches(version: str, wanted: str) -> bool:
    """Whether ``version`` (``3.12.1``) is what ``wanted`` (``3.12`` or ``3.12.1``) asks."""
    return version == wanted or version.startswith(wanted + ".")


def _requested(session: Session, spec: PackagingSpec) -> str | None:
    """The interpreter ``python_version`` resolves to on the cluster (once per session),
    ``None`` without one (see :mod:`slurm._client.packaging.pythons`)."""
    found = _found_python(session, spec, resolve=True)
    return found.executable if found is not None else None


def _found_python(session: Session, spec: PackagingSpec, *, resolve: bool) -> FoundPython | None:
    """What ``spec.python_version`` resolved to in this session (resolved now if
    ``resolve``); ``None`` without one, or not resolved yet."""
    if spec.python_version is None:
        return None
    env = dict(spec.env)
    given = env.get("UV_PYTHON_INSTALL_DIR")
    install_dir = (
        session.transport.expand_path(given).rstrip("/")
        if given
        else f"{envs_dir_for(session, spec)}/.python"
    )
    key = (spec.python_version, install_dir, spec.env)
    with session.pythons_lock:
        found = session.pythons.get(key)
        if found is None and resolve:
            from slurm._client.packaging.pythons import find_python

            found = find_python(session.transport, spec.python_version, install_dir, env)
            session.pythons[key] = found
    return found


def _uv(spec: PackagingSpec, report: PreflightReport) -> str | None:
    """``uv`` on the cluster to create the environment with, ``None`` for venv + pip."""
    if spec.installer == "pip":
        return None
    if spec.installer == "uv" and report.uv is None:
        raise ConfigurationError(
            f"packaging={{'installer': 'uv'}} but uv is not on the cluster ({report.where}): "
            "install it there (`pip install --user uv`) or use 'auto'."
        )
    return report.uv


def _trusted(session: Session, settings: InterpreterSettings, what: str) -> dict[str, str]:
    """The directories the preflight checks are the user's own (:mod:`slurm._transport.trust`)."""
    trusted = session.store.trusted_dirs()
    envs_dir = envs_dir_for(session, settings.spec)
    if what == "env" or _ships_here(session, settings):
        # Shipped source is reused from .code/<hash> once that directory exists, so the
        # directories above it must be ones nobody else could have made or can rename.
        trusted.update(env_dir=envs_dir, code_dir=f"{envs_dir}/.code")
    if what == "env":
        trusted["wheel_store"] = f"{envs_dir}/.store"
    return trusted


def _ships_here(session: Session, settings: InterpreterSettings) -> bool:
    """Whether this session ships source into its environments directory: not a
    workflow's tasks on the local backend, which run the workflow's own snapshot."""
    inherited = os.environ.get(CODE_DIR_VARIABLE) and session.backend_type == "local"
    return ships_sources(session, settings) and not inherited


def _node_check(
    session: Session, settings: InterpreterSettings, what: str, python: str
) -> NodeCheck | None:
    """What the compute nodes must see for these settings; ``None`` inside a job on the
    local backend (this node runs from the same directories, and an ``srun`` here
    would be a step of this job)."""
    if session.backend_type == "local" and "SLURM_JOB_ID" in os.environ:
        return None
    dirs = {"job_base_dir": session.base_dir}
    if what == "env" or _ships_here(session, settings):  # the environment or .code/
        envs = envs_dir_for(session, settings.spec)
        if not envs.startswith(session.base_dir.rstrip("/") + "/"):
            dirs["env_dir"] = envs
    options = session.default_options
    srun = probe.srun_argv(
        partition=session.default_partition,
        account=options.get("account"),
        qos=options.get("qos"),
    )
    return NodeCheck(tuple(srun), dirs, python, ("slurm.runner",) if what == "as-is" else ())


def _preflight(
    session: Session, settings: InterpreterSettings, plan: tuple[str, str, tuple[str, ...]] | None
) -> tuple[str, str, PreflightReport]:
    what, python, modules = plan or _plan(session, settings)
    report = run_preflight(
        session.transport,
        session.base_dir,
        python,
        modules=modules,
        trusted=_trusted(session, settings, what),
        nodes=_node_check(session, settings, what, python),
    )
    if settings.spec.python_version:
        _check_asked(report, settings.spec.python_version, python)
    return what, python, report


def _check_asked(report: PreflightReport, wanted: str, python: str) -> None:
    """The preflight's findings for the interpreter a ``python_version`` resolved to: it
    must be that version, and the fix for one the nodes cannot start names the
    install directory."""
    if report.python is not None and not _matches(report.python.version, wanted):
        report.add(
            Finding(
                "python_version_asked",
                False,
                f"packaging asks for python_version={wanted!r}, but {python} on "
                f"{report.where} is {report.python.version}",
                f"pass packaging={{'python': '/path/to/python3'}} with a Python {wanted} there",
            )
        )
    for i, finding in enumerate(report.findings):
        if finding.name == "python_on_nodes" and not finding.ok:
            report.findings[i] = replace(
                finding,
                fix=f"install Python {wanted} where the nodes see it: leave "
                "UV_PYTHON_INSTALL_DIR unset (uv installs it under the environments "
                "directory) or set it in the packaging's env to a directory on a filesystem "
                "the login host and the compute nodes share",
            )


def _fallback(
    session: Session, settings: InterpreterSettings, report: PreflightReport
) -> tuple[str, str, tuple[str, ...]] | None:
    """On the local backend, when the nodes cannot start this very interpreter (a
    virtual environment in a clone under ``/tmp``) and nothing else is wrong: build
    the jobs' environment from its base interpreter, as over SSH."""
    if session.backend_type != "local" or settings.python or settings.spec.mode != "auto":
        return None
    if [f.name for f in report.problems] != ["python_on_nodes"]:
        return None
    base = os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)
    logger.warning(
        "the compute nodes cannot start this interpreter (%s); jobs run in an environment "
        "built from %s in %s",
        sys.executable,
        base,
        envs_dir_for(session, settings.spec),
    )
    return "env", base, ("ensurepip",)


def _chosen(session: Session, settings: InterpreterSettings) -> tuple[str, str, PreflightReport]:
    """The plan for these settings and its preflight's report (the fallback's, if taken)."""
    what, python, report = _preflight(session, settings, None)
    fallback = _fallback(session, settings, report)
    if fallback is not None:
        what, python, report = _preflight(session, settings, fallback)
    return what, python, report


def _checked(
    session: Session, settings: InterpreterSettings, state: InterpreterState
) -> tuple[str, str]:
    """The plan for these settings, after a preflight that passed (once; under state.lock)."""
    if state.plan is None:
        what, python, report = _chosen(session, settings)
        state.report = report
        report.raise_for_problems()
        state.plan = (what, python)
    return state.plan


def _project(spec: PackagingSpec) -> Project | None:
    from slurm._client.packaging.project import find_project, read_project

    if spec.project is None:
        return None
    if spec.project == DISCOVER:
        return find_project()
    root = Path(spec.project).expanduser()
    project = read_project(root)
    if project is None:
        raise ConfigurationError(
            f"packaging={{'project': {spec.project!r}}}: no pyproject.toml with a [project] "
            "name there. Point it at your project's root, or pass None to ship only the SDK."
        )
    return project


def _environment(
    session: Session, spec: PackagingSpec, report: PreflightReport, extras: tuple[str, ...]
) -> Environment:
    from slurm._client.packaging.deps import collect_dependencies, requirement_name
    from slurm._client.packaging.lock import LockPolicy
    from slurm._client.packaging.remote import ensure_environment
    from slurm._client.packaging.wheels import Wheel, build_project, sdk_wheel, wheel_requirements

    assert report.python is not None  # noqa: S101 (a passed preflight has it; for mypy)
    started = time.perf_counter()
    with _build_lock:
        main: list[Wheel] = [sdk_wheel()]
        project = _project(spec)
        if project is not None:
            main.append(build_project(project))
        elif spec.extras:
            raise ConfigurationError(
                f"packaging extras={list(spec.extras)} names extras of your project, but no "
                "project is shipped (project=None or none found): drop extras, or give project=."
            )
        requirements = [r for w in main[:1] for r in wheel_requirements(w.path)]
        requirements += [r for w in main[1:] for r in wheel_requirements(w.path, spec.extras)]
        requirements += list(spec.dependencies)  # the earlier SDK's "dependencies"
        names = {w.name for w in main}
        deps = collect_dependencies(requirements, names, report.python, spec.indexes)
        # What the wheels bring already is not asked for again: the same environment.
        have = names | {requirement_name(pin) for pin in deps.pins}
        wanted = [r for r in extras if requirement_name(r) not in have]
        if wanted:
            deps = collect_dependencies(
                [*requirements, *wanted], names, report.python, spec.indexes
            )
        # Asked for by name, so installed by name: collected, they are only on offer.
        wanted = [*spec.dependencies, *wanted]
    build = time.perf_counter() - started
    transport = session.transport
    environment = ensure_environment(
        transport,
        envs_dir_for(session, spec),
        main=main,
        deps=deps.wheels,
        pins=deps.pins,
        info=report.python,
        uv=_uv(spec, report),
        policy=LockPolicy(timeout=spec.lock_timeout),
        requirements=wanted,
        indexes=spec.indexes,
        env=dict(spec.env),
    )
    environment.timings["build"] = build
    shipped = ", ".join([w.filename for w in main] + wanted)
    logger.info(
        "jobs run in %s (%s; %s)",
        environment.python,
        shipped,
        "created now" if environment.created else "reused",
    )
    return environment


def envs_dir_for(session: Session, spec: PackagingSpec) -> str:
    """The environments directory on the cluster (``env_dir``, else ``{job_base_dir}/.envs``)."""
    if spec.env_dir:
        return session.transport.expand_path(spec.env_dir).rstrip("/")
    return f"{session.base_dir}/.envs"


def diagnose(session: Session) -> dict[str, Any]:
    """Fresh preflight findings for ``cluster`` as a dict; never raises for a finding
    (a ``python_version`` that is not there and cannot be installed is one)."""
    settings = interpreter_settings(session)
    try:
        what, _, report = _chosen(session, settings)
    except ConfigurationError as exc:
        if settings.spec.python_version is None or _found_python(
            session, settings.spec, resolve=False
        ):
            raise
        # The other checks, with the cluster's python3; and what finding that Python said.
        plain = replace(settings.spec, python_version=None)
        what, _, report = _preflight(session, replace(settings, spec=plain), None)
        report.add(Finding("python_version", False, str(exc)))
    result = report.to_dict()
    result["backend"] = session.backend_type
    result["job_base_dir"] = session.base_dir
    result["packaging"] = "environment built from wheels" if what == "env" else "none"
    found = _found_python(session, settings.spec, resolve=False)
    if found is not None:
        from slurm._client.packaging.pythons import HOW

        result["python_version"] = {
            "asked": settings.spec.python_version,
            "executable": found.executable,
            "version": found.version,
            "how": HOW[found.how],
        }
    environment = _state(session).environments.get(())
    if environment is not None:
        result["environment"] = {"key": environment.key, "python": environment.python}
    return result

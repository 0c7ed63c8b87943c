"""``Task``: a function plus the Slurm options it runs with.

Calling a task inside ``with cluster:`` (or inside a running workflow) submits
it and returns a :class:`~slurm._api.job.Job`. ``.with_options`` and ``.after``
return new tasks; the original is never changed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token

from slurm._job.inject import injected_parameters
from slurm._slurm.options import check_task_options, normalize_options
from slurm._types import TYPE_CHECKING
from slurm._wire.record import record
from slurm.errors import ConfigurationError, NotSubmittableError

if TYPE_CHECKING:
    import inspect
    from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar

    from slurm._api.array import ArrayJob
    from slurm._api.job import Job
    from slurm._slurm.pack import Packing

    P = ParamSpec("P")
    R = TypeVar("R")

    DependencyKind = Literal["afterok", "afterany", "afternotok", "after"]
else:  # a job imports this module and never typing: subscripting a task's class gives it back

    class Generic:
        def __class_getitem__(cls, _: object) -> type:
            return cls

    P = R = None
_DEPENDENCY_KINDS = ("afterok", "afterany", "afternotok", "after")

__all__ = [
    "BoundTask",
    "FunctionRef",
    "SlurmTask",
    "Submitter",
    "Task",
    "active_cluster",
    "enter_cluster",
    "leave_cluster",
    "set_process_default",
]


if TYPE_CHECKING:

    class Submitter(Protocol):
        """Where a task called now is submitted: a :class:`~slurm.Cluster`."""

        def submit_call(
            self, task: Task[Any, R], args: Sequence[Any], kwargs: Mapping[str, Any]
        ) -> Job[R]: ...

        def submit_map(
            self,
            task: Task[Any, R],
            items: Sequence[Any],
            max_concurrent: int | None = None,
            packing: Packing | None = None,
        ) -> ArrayJob[R]: ...


_active: ContextVar[Submitter | None] = ContextVar("slurm_active_cluster", default=None)
_process_default: Submitter | None = None


def active_cluster() -> Submitter | None:
    """Where a task called now would be submitted: the innermost ``with cluster:`` block,
    else the cluster of the workflow this process runs, if any."""
    return _active.get() or _process_default


def enter_cluster(cluster: Submitter) -> Token[Submitter | None]:
    """Calls from here on (in this context) submit to ``cluster``; :func:`leave_cluster` undoes."""
    return _active.set(cluster)


def leave_cluster(token: Token[Submitter | None]) -> None:
    _active.reset(token)


def set_process_default(cluster: Submitter | None) -> None:
    """Used on a workflow's node: every thread of the workflow's process submits here."""
    global _process_default
    _process_default = cluster


@record(frozen=True)
class FunctionRef:
    """An importable function, travelling by module and qualified name."""

    module: str
    qualname: str

    def load(self) -> Callable[..., Any]:
        try:
            # __import__, not importlib.import_module: importlib (with warnings) is a
            # module a job's start would import for this one call.
            __import__(self.module)
            obj: Any = sys.modules[self.module]
        except ImportError as exc:
            raise ImportError(_import_failure(self.module, exc)) from exc
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        fn = obj.unwrapped if isinstance(obj, Task) else obj
        if not callable(fn):
            raise TypeError(f"{self.module}.{self.qualname} is not callable")
        return fn


def _import_failure(module: str, exc: ImportError) -> str:
    """What failed, where the job looked, and the one thing to change."""
    import os

    missing = exc.name or module
    code_dir = os.environ.get("SLURM_SDK_CODE_DIR")
    looked = f"the source shipped with the job ({code_dir}), " if code_dir else ""
    if code_dir:
        advice = (
            f"if {missing!r} is your own code, import it at module level in the task's module "
            "(the SDK ships what the call's modules import) or move it into a package beside "
            "them; if it is a library, install it where you submit from (the job's environment "
            "gets the installed distributions your code imports) or list it in your project's "
            "dependencies"
        )
    else:
        advice = (
            "leave packaging at 'auto' (the default, not 'none') so the SDK ships your code "
            "with the job, or install it in the cluster's Python environment"
        )
    return (
        f"Cannot import module {module!r} on the cluster: {missing!r} was not found ({exc}). "
        f"The job looked in {looked}the environment {sys.prefix} and the cluster's Python: "
        f"{advice}."
    )


def _reference_for(fn: Callable[..., Any]) -> FunctionRef | None:
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module_name or module_name == "__main__" or "<locals>" in qualname:
        return None
    module = sys.modules.get(module_name)
    if module is None or _registered_by_value(module):
        return None
    obj: Any = module
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        return None
    found = obj.unwrapped if isinstance(obj, Task) else obj
    return FunctionRef(module_name, qualname) if found is fn else None


def _registered_by_value(module: Any) -> bool:
    """Whether ``cloudpickle.register_pickle_by_value(module)`` was called: then by value too."""
    import cloudpickle

    check = getattr(cloudpickle.cloudpickle, "_is_registered_pickle_by_value", None)
    return bool(check is not None and check(module))


def _rebuild_task(
    fn: Callable[..., Any] | FunctionRef, options: dict[str, Any], workflow: bool
) -> Task[Any, Any]:
    function = fn.load() if isinstance(fn, FunctionRef) else fn
    return Task(function, options, workflow=workflow)


class Task(Generic[P, R]):
    """A function that runs as a Slurm job when called in a cluster context.

    Created by :func:`slurm.task` / :func:`slurm.workflow`; see those for examples.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        options: Mapping[str, Any] | None = None,
        *,
        workflow: bool = False,
        dependencies: Sequence[tuple[DependencyKind, Any]] = (),
        prebuild: Sequence[Task[Any, Any]] = (),
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"@task needs a function, got {fn!r}")
        self._fn = fn
        self._options = normalize_options(options or {})
        check_task_options(self._options, where="@workflow" if workflow else "@task")
        self._workflow = workflow
        self._dependencies = tuple(dependencies)
        self._prebuild = tuple(prebuild)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", "task")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", "__main__")
        self.__wrapped__ = fn

    # --- what it is ---------------------------------------------------------
    @property
    def unwrapped(self) -> Callable[P, R]:
        """The plain function: call it to run the code here, without Slurm."""
        return self._fn

    @property
    def name(self) -> str:
        return self.__name__

    @property
    def reference_module(self) -> str | None:
        """The module the cluster imports the function from (``None``: it travels by value)."""
        reference = _reference_for(self._fn)
        return reference.module if reference else None

    @property
    def options(self) -> dict[str, Any]:
        """The task's own sbatch options (normalised), without cluster defaults."""
        return dict(self._options)

    @property
    def is_workflow(self) -> bool:
        return self._workflow

    @property
    def dependencies(self) -> tuple[tuple[DependencyKind, Any], ...]:
        return self._dependencies

    @property
    def prebuild(self) -> tuple[Task[Any, Any], ...]:
        """The tasks whose container images are built before this one is submitted
        (:meth:`with_dependencies`)."""
        return self._prebuild

    def __repr__(self) -> str:
        kind = "workflow" if self._workflow else "task"
        return f"<{kind} {self.__module__}.{self.__qualname__} {self._options}>"

    # --- deriving new tasks -------------------------------------------------
    def _derive(self, **changes: Any) -> Task[P, R]:
        return Task(
            self._fn,
            changes.get("options", self._options),
            workflow=self._workflow,
            dependencies=changes.get("dependencies", self._dependencies),
            prebuild=changes.get("prebuild", self._prebuild),
        )

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy with these sbatch options added (they win over the task's own)."""
        merged = {**self._options, **normalize_options(options)}
        return self._derive(options=merged)

    def after(self, *jobs: Any, kind: DependencyKind = "afterok") -> Task[P, R]:
        """A copy whose next submissions wait for ``jobs`` (``afterok`` by default).

        ``kind="afterany"`` starts it whatever the outcome of ``jobs``.
        """
        if kind not in _DEPENDENCY_KINDS:
            raise ConfigurationError(
                f"Unknown dependency kind {kind!r}; use one of {', '.join(_DEPENDENCY_KINDS)}."
            )
        flat: list[Any] = []
        for job in jobs:
            if job is None:
                continue
            if isinstance(job, list | tuple):
                flat.extend(j for j in job if j is not None)
            else:
                flat.append(job)
        for job in flat:
            if not hasattr(job, "id"):
                raise ConfigurationError(f".after() takes Job objects, got {job!r}")
        return self._derive(dependencies=self._dependencies + tuple((kind, j) for j in flat))

    def with_dependencies(self, tasks: Iterable[Task[Any, Any]]) -> Task[P, R]:
        """A copy that builds the container images of ``tasks`` before it is submitted.

        For a workflow whose tasks run in images of their own (``packaging="container"``
        with another Dockerfile than the workflow's): nothing is built on the
        workflow's node, so the images are built and pushed here, once, and handed to
        the workflow, whose calls of those tasks (with the same options) run in them.
        A task that is not packaged in a container has nothing to build. The earlier
        SDK's ``cluster.submit(flow).with_dependencies([...])(...)`` works too.

        Example::

            child = train.with_options(packaging="container", packaging_dockerfile="gpu.Dockerfile")
            job = pipeline.with_dependencies([child])(data)

        Raises:
            ConfigurationError: an item is not a task.
        """
        chosen = tuple(tasks)
        for item in chosen:
            if not isinstance(item, Task):
                raise ConfigurationError(
                    f"{self.__name__}.with_dependencies() takes tasks (functions decorated "
                    f"with @task, or their .with_options() copies), got {item!r}."
                )
        return self._derive(prebuild=chosen)

    def after_any(self, *jobs: Any) -> Task[P, R]:
        """Shorthand for ``after(*jobs, kind="afterany")``."""
        return self.after(*jobs, kind="afterany")

    # --- submitting ---------------------------------------------------------
    def _cluster(self) -> Submitter:
        cluster = active_cluster()
        if cluster is None:
            raise NotSubmittableError(
                f"{self.__name__}() was called outside a cluster context, so there is nowhere "
                f"to submit it. Call it inside `with cluster:` (or use "
                f"`cluster.submit({self.__name__})(...)`) to run it as a Slurm job, or call "
                f"`{self.__name__}.unwrapped(...)` to run the plain function here."
            )
        return cluster

    def __call__(self, *args: Any, **kwargs: Any) -> Job[R]:
        """Submit the call as a Slurm job and return its :class:`Job`.

        Arguments may be Jobs (they become those jobs' results on the node, with
        an ``afterok`` dependency); context parameters are filled in by the runner.
        """
        job: Job[R] = self._cluster().submit_call(self, args, kwargs)
        return job

    def map(
        self,
        items: Iterable[Any],
        max_concurrent: int | None = None,
        *,
        cache: bool | None = None,
        pack: int | str | None = None,
        pack_parallel: int = 1,
        pack_target: str | int = "00:10:00",
    ) -> ArrayJob[R]:
        """Submit one Slurm array: one element per item, results in item order.

        An item is a single value (one positional argument), a tuple (positional
        arguments) or a dict (keyword arguments). ``cache=True`` (or the task's
        own ``cache=True``): items whose results are cached are answered from the
        cache, and only the others are submitted, as an array of just those
        (see ``docs/caching.md``).

        Args:
            max_concurrent: at most this many elements run at once (Slurm's ``%N``).
            cache: answer calls from the result cache (``docs/caching.md``).
            pack: run this many calls in each array element, one Python process
                for all of them (one start, one import of the module); every call
                keeps its own ``Job`` (result, exception, logs, usage, retries,
                cancellation). ``"auto"``: about as many elements as the partition
                has free CPUs, none longer than ``pack_target`` by the task's
                earlier calls. The element asks for ``time`` times the calls it
                runs one after the other.
            pack_parallel: with ``pack``, run this many of an element's calls at
                once (each in a child process; the element asks for that many
                times ``cpus_per_task``).
            pack_target: with ``pack="auto"``, the longest an element should run.

        Raises:
            ConfigurationError: ``pack``, ``pack_parallel`` or ``pack_target`` is not
                valid, or an item cannot be pickled (the message names it); nothing
                was submitted.

        Example::

            runs = score.map(range(1000), pack="auto")
            print(sum(runs.get_results()))
        """
        packing = None
        if pack is not None:
            from slurm._slurm.pack import check_packing  # not on the job's import path

            packing = check_packing(f"{self.__name__}.map()", pack, pack_parallel, pack_target)
        chosen = self if cache is None else self.with_options(cache=cache)
        cluster = chosen._cluster()
        array: ArrayJob[R] = cluster.submit_map(chosen, list(items), max_concurrent, packing)
        return array

    def _call_signature(self) -> inspect.Signature:
        """The function's signature without the parameters the runner fills in (contexts);
        read at the first call, then kept (a map of 1000 items binds 1000 times)."""
        cached: inspect.Signature | None = self.__dict__.get("_call_signature_cache")
        if cached is not None:
            return cached
        import inspect  # a client's need: a job never binds arguments

        injected = injected_parameters(self._fn, workflow=self._workflow)
        signature = inspect.signature(self._fn)
        parameters = [p for n, p in signature.parameters.items() if n not in injected]
        cached = signature.replace(parameters=parameters)
        self.__dict__["_call_signature_cache"] = cached
        return cached

    def bind_check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` now if the arguments do not fit the function."""
        try:
            self._call_signature().bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.__name__}(): {exc} (nothing was submitted)") from None

    def call_arguments(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> list[tuple[str, Any]]:
        """A call's arguments by parameter name, defaults filled in, ``**kwargs`` by name:
        ``f(1, b=2)`` and ``f(1, 2)`` give the same list (what a cache key is made of).
        By position and name as given when the signature cannot be read."""
        try:
            signature = self._call_signature()
            bound = signature.bind(*args, **kwargs)
        except (TypeError, ValueError):
            return [(f"#{i}", v) for i, v in enumerate(args)] + [
                (k, kwargs[k]) for k in sorted(kwargs)
            ]
        bound.apply_defaults()
        import inspect

        found: list[tuple[str, Any]] = []
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                found += [(f"**{k}", value[k]) for k in sorted(value)]
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                found += [(f"*{name}[{i}]", v) for i, v in enumerate(value)]
            else:
                found.append((name, value))
        return found

    def __reduce__(self) -> tuple[Any, ...]:
        reference = _reference_for(self._fn)
        return (_rebuild_task, (reference or self._fn, self._options, self._workflow))


class BoundTask(Generic[P, R]):
    """What ``cluster.submit(task)`` returns: call it to submit ``task`` to that cluster.

    ``.with_dependencies([...])`` is :meth:`Task.with_dependencies` (the earlier SDK's
    ``cluster.submit(flow).with_dependencies([task_a, task_b])(data)``).
    """

    def __init__(self, cluster: Submitter, task: Task[P, R]) -> None:
        self.cluster = cluster
        self.task = task

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Submit one call of the task and return its :class:`~slurm.Job`."""
        return self.cluster.submit_call(self.task, args, kwargs)

    def with_dependencies(self, tasks: Iterable[Task[Any, Any]]) -> BoundTask[P, R]:
        """The same submission, building the images of ``tasks`` first."""
        return BoundTask(self.cluster, self.task.with_dependencies(tasks))

    def __repr__(self) -> str:
        return f"<submit {self.task!r} to {self.cluster!r}>"


#: The earlier slurm-sdk's name of :class:`Task` (``from slurm import SlurmTask``).
SlurmTask = Task

"""Bytes that travel between client and job: the call payload and the result envelope.

The payload is a cloudpickle of the task, its arguments and a little metadata.
A :class:`~slurm._api.job.Job` found anywhere inside the arguments is not pickled:
it travels as a :class:`JobRef` and turns into that job's result on the
compute node (the submitter adds an ``afterok`` dependency on it).

The envelope is what the runner writes when the call ends: the pickled value,
or the exception with its type name, message and traceback text, so the
client can rebuild the exception or, failing that, report it faithfully.
Beside it the runner writes the :class:`Outcome` as JSON (no pickle): what
``slurm jobs`` and every state check read, so that looking at a job never
unpickles anything.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable

from slurm._types import TYPE_CHECKING
from slurm._wire import jsontext
from slurm._wire.record import field, record

if TYPE_CHECKING:
    import pickle
    from typing import Any
else:
    try:  # the C pickler alone: pickle.py (its classes are these) imports re, struct...
        import _pickle as pickle
    except ImportError:  # pragma: no cover (CPython has it)
        import pickle

from slurm.errors import ResultError, TaskFailedError

# cloudpickle is imported only where it is needed: to write a payload (the
# client), and to pickle a value or exception plain pickle cannot. A job
# whose function travels by reference loads its payload with plain pickle;
# a by-value function makes the payload itself import cloudpickle's helpers.


def _hostname() -> str:
    return os.uname().nodename


def _format(exc: BaseException) -> str:
    import traceback  # only on the failure path: keeps the job's start fast

    return "".join(traceback.format_exception(exc))


__all__ = [
    "PAYLOAD_VERSION",
    "Call",
    "Envelope",
    "JobRef",
    "Outcome",
    "Payload",
    "RunPolicy",
    "WorkflowSpec",
    "dumps_payload",
    "envelope_for_exception",
    "envelope_for_value",
    "job_ref_id",
    "loads_payload",
    "plain_loads",
]

#: Bumped whenever a record below changes shape: a job written by one SDK
#: version and run by another then fails with a clear message.
PAYLOAD_VERSION = 4
#: Payload versions this runner still reads: version 3 named the SDK's modules by
#: their flat paths (``slurm.payload``, ``slurm.retry``...), read through
#: :data:`_MOVED_MODULES`, so that jobs queued before an upgrade still run.
READABLE_PAYLOAD_VERSIONS = (3, PAYLOAD_VERSION)
ENVELOPE_VERSION = 3
#: The pickle protocol of payloads, envelopes and callbacks (``pickle.HIGHEST_PROTOCOL``
#: of every Python the SDK runs on).
PROTOCOL = 5
OUTCOME_VERSION = 1
_SUMMARY_WIDTH = 200


@record(frozen=True)
class JobRef:
    """A pointer to another job's result, standing in for a ``Job`` argument.

    Attributes:
        job_ids: the Slurm ids to depend on (an array split in parts has several).
        result_path: a single job's result file.
        result_dirs: an array's results directories, in item order.
    """

    job_ids: tuple[str, ...]
    result_path: str = ""
    result_dirs: tuple[str, ...] = ()

    @property
    def job_id(self) -> str:
        return ",".join(self.job_ids)


@record(frozen=True)
class Call:
    """One call's arguments."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@record(frozen=True)
class RunPolicy:
    """How the runner treats interruptions.

    Attributes:
        max_requeues: how often one call may be requeued.
        requeue_on_time_limit: at Slurm's time-limit warning, requeue the job
            with the same limit: ``True`` always (the task asked for it), ``None``
            only when the call registered a checkpoint (``on_requeue``): a call
            that would start from scratch ends in TIMEOUT instead; ``False``
            never (the client retries it with more time, see :class:`slurm.Retry`).
            Payloads of version 3 said ``True`` for the default.
        requeue_grace: the seconds before the time limit Slurm was asked to warn
            the job (``--signal=B:USR1@grace``); the runner holds back a warning
            that comes earlier. None: the task set its own ``signal``.
    """

    max_requeues: int = 0
    requeue_on_time_limit: bool | None = None
    requeue_grace: int | None = None


@record(frozen=True)
class WorkflowSpec:
    """What a workflow's own cluster needs on its node: the submitter's defaults, and the
    container images built for the run (build key -> reference; never built on the node)."""

    default_options: dict[str, Any]
    index_dir: str
    images: tuple[tuple[str, str], ...] = ()


@record(frozen=True)
class Payload:
    """Everything one job (or one array element) needs to run its call.

    Written by the client, read by the runner: a single job has one, an
    array one per element (see :class:`slurm._wire.layout.JobPaths`), so an
    element loads only its own arguments.

    Attributes:
        task: the task (its function travels by reference when importable).
        call: the arguments.
        policy: requeue policy.
        workflow: for a workflow, what its cluster on the node is made from.
        version: :data:`PAYLOAD_VERSION` of the SDK that wrote it.
    """

    task: Any
    call: Call
    policy: RunPolicy = RunPolicy()
    workflow: WorkflowSpec | None = None
    version: int = PAYLOAD_VERSION


#: Types whose objects are never a Job (pickle asks persistent_id of every object).
_PLAIN_TYPES = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        bytes,
        bytearray,
        complex,
        tuple,
        list,
        dict,
        set,
        frozenset,
    }
)


@functools.cache
def _ref_pickler() -> type[Any]:
    import cloudpickle

    class RefPickler(cloudpickle.Pickler):  # type: ignore[misc]
        """cloudpickle, with every Job found inside replaced by a :class:`JobRef`."""

        def __init__(self, file: io.BytesIO, refs: list[JobRef]) -> None:
            super().__init__(file, protocol=PROTOCOL)
            self._refs = refs

        def persistent_id(self, obj: Any) -> Any:
            if type(obj) in _PLAIN_TYPES:  # most of what a payload holds: never a Job
                return None
            found = job_ref_id(obj)
            if found is not None:
                self._refs.append(JobRef(*found[1:]))
            return found

    return RefPickler


def job_ref_id(obj: Any) -> tuple[str, tuple[str, ...], str, tuple[str, ...]] | None:
    """How a pickle names a Job (or ArrayJob) found in it: the ids and result files of the
    run, never the object itself (None for any other object)."""
    make_ref = getattr(type(obj), "__slurm_job_ref__", None)
    if make_ref is None:
        return None
    items = getattr(type(obj), "__slurm_job_items__", None)
    if items is not None and items(obj) is not None:
        return None  # it pickles as its elements, each a job of its own
    ref: JobRef = make_ref(obj)
    return ("slurm-job", ref.job_ids, ref.result_path, ref.result_dirs)


def dumps_payload(payload: Payload) -> tuple[bytes, list[JobRef]]:
    """Pickle a payload; return the bytes and the jobs it refers to."""
    buffer = io.BytesIO()
    refs: list[JobRef] = []
    _ref_pickler()(buffer, refs).dump(payload)
    return buffer.getvalue(), refs


def _dumps(obj: Any) -> bytes:
    """Plain pickle when it can (no cloudpickle import); cloudpickle when it cannot
    (a lambda, a class defined in a notebook or ``__main__``...)."""
    try:
        return pickle.dumps(obj, protocol=PROTOCOL)
    except Exception:
        import cloudpickle

        return bytes(cloudpickle.dumps(obj, protocol=PROTOCOL))


#: Where the modules that version-3 payloads name live now (only the SDK's own
#: classes and functions a payload can hold: its records, a Task, a Retry).
_MOVED_MODULES = {
    "slurm.payload": "slurm._wire.payload",
    "slurm.task": "slurm._api.task",
    "slurm.retry": "slurm._slurm.retry",
    "slurm.container": "slurm._slurm.container",
    "slurm.options": "slurm._slurm.options",
    "slurm.runtime": "slurm._job.context",
    "slurm.workflow": "slurm._api.workflow",
}


class _RefUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, resolve: Callable[[JobRef], Any]) -> None:
        super().__init__(file)
        self._resolve = resolve

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED_MODULES.get(module, module), name)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "slurm-job"):
            raise pickle.UnpicklingError(
                f"unknown job reference {pid!r}: the payload was written by another "
                "slurm-sdk version"
            )
        _, job_ids, result_path, result_dirs = pid
        return self._resolve(JobRef(tuple(job_ids), result_path, tuple(result_dirs)))


def loads_payload(data: bytes, resolve: Callable[[JobRef], Any]) -> Payload:
    """Unpickle a payload, turning each :class:`JobRef` into ``resolve(ref)``.

    Raises:
        ResultError: the payload was written by another slurm-sdk version.
    """
    loaded = _RefUnpickler(io.BytesIO(data), resolve).load()
    version = getattr(loaded, "version", None)
    if not isinstance(loaded, Payload) or version not in READABLE_PAYLOAD_VERSIONS:
        raise ResultError(
            f"This job's payload was written by another slurm-sdk version (payload version "
            f"{version if version is not None else 'unknown'}, this runner reads version "
            f"{PAYLOAD_VERSION}). Install the same slurm-sdk version on the cluster as on "
            "the client, then submit the call again."
        )
    return loaded


#: What :func:`plain_loads` rebuilds besides the pickle's own plain values (numbers,
#: strings, bytes, lists, tuples, dicts, sets, None): each is data, none runs code.
_PLAIN_CLASSES = frozenset(
    {
        ("builtins", name)
        for name in (
            *("int", "float", "complex", "bool", "str", "bytes", "bytearray"),
            *("list", "tuple", "dict", "set", "frozenset", "range", "slice"),
        )
    }
    | {("collections", "OrderedDict"), ("decimal", "Decimal"), ("fractions", "Fraction")}
    | {("datetime", name) for name in ("date", "time", "datetime", "timedelta", "timezone")}
    | {("uuid", "UUID"), ("pathlib", "PurePosixPath"), ("pathlib", "PosixPath")}
)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"{module}.{name} is not plain data (only numbers, strings, bytes, containers, "
            "dates, decimals and paths are rebuilt when the result is not trusted)"
        )


def plain_loads(data: bytes) -> Any:
    """Unpickle ``data`` only if it is plain data: no class outside a short list of value
    types is looked up, so nothing in it can run code here (``trusted=False``).

    Raises:
        pickle.UnpicklingError: it holds something else.
    """
    return _PlainUnpickler(io.BytesIO(data)).load()


@record
class Envelope:
    """The outcome of one execution of a task, as written by the runner."""

    ok: bool
    value: bytes | None = None
    exception: bytes | None = None
    type_name: str = ""
    message: str = ""
    traceback: str = ""
    node: str = ""
    job_id: str | None = None
    summary: str = ""  # a one-line repr of the value, for `slurm jobs show`
    version: int = ENVELOPE_VERSION

    def outcome(self) -> Outcome:
        """What this envelope says, without the pickled value or exception."""
        return Outcome(
            ok=self.ok,
            type_name=self.type_name,
            message=self.message,
            traceback=self.traceback,
            node=self.node,
            job_id=self.job_id,
            summary=self.summary,
        )

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.__dict__, protocol=PROTOCOL)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, job_id: str | None = None, trusted: bool = True
    ) -> Envelope:
        """Read an envelope; a file of another SDK version is a clear :class:`ResultError`.
        ``trusted=False`` reads its fields with :func:`plain_loads`."""
        try:
            # Only from a private file (JobStore.check_private), or only plain data.
            fields = pickle.loads(data) if trusted else plain_loads(data)  # noqa: S301
            version = fields.get("version")
            if version == ENVELOPE_VERSION:
                return cls(**fields)
            problem = f"it was written by another slurm-sdk version (result version {version})"
        except Exception as exc:
            raise ResultError(
                f"The result file of job {job_id} is unreadable ({type(exc).__name__}: {exc}). "
                "It may come from an incompatible slurm-sdk version; re-run the job.",
                job_id=job_id,
            ) from exc
        raise ResultError(
            f"The result file of job {job_id} cannot be read: {problem}, and this one reads "
            f"version {ENVELOPE_VERSION}. Use the same slurm-sdk version on the client and "
            "the cluster, or re-run the job.",
            job_id=job_id,
        )

    def unwrap(self, *, trusted: bool = True) -> Any:
        """The value, or raise the remote exception (rebuilt when its type is available).

        ``trusted=False``: the value only if it is plain data (:func:`plain_loads`), and
        the remote exception never rebuilt (a :class:`TaskFailedError` says what it was).
        """
        where = f"job {self.job_id} on {self.node}" if self.node else f"job {self.job_id}"
        if self.ok and not trusted:
            try:
                return plain_loads(self.value or b"")
            except Exception as exc:
                raise ResultError(
                    f"The result of {where} is not plain data, so it was not unpickled "
                    f"(trusted=False): {exc}. Return plain data, or call get_result() "
                    "without trusted=False if you trust the cluster's login node.",
                    job_id=self.job_id,
                ) from exc
        if self.ok:
            try:
                return pickle.loads(self.value or b"")  # noqa: S301 (same envelope, same check)
            except Exception as exc:
                raise ResultError(
                    f"The result of {where} could not be unpickled here: "
                    f"{type(exc).__name__}: {exc}. Make the returned type importable on the "
                    "client, or return plain data (dicts, lists, numbers, strings).",
                    job_id=self.job_id,
                ) from exc
        error: BaseException | None = None
        if self.exception is not None and trusted:
            try:
                error = pickle.loads(self.exception)  # noqa: S301 (same envelope, same check)
            except Exception:
                error = None
        # SystemExit or KeyboardInterrupt in the task must not stop this program:
        # only ordinary exceptions are raised as themselves.
        if isinstance(error, Exception):
            error.add_note(f"\n--- remote traceback ({where}) ---\n{self.traceback.rstrip()}")
            raise error
        raise TaskFailedError(
            f"{self.type_name}: {self.message}\n(raised in {where}; remote traceback below)\n"
            f"{self.traceback.rstrip()}",
            job_id=self.job_id,
            type_name=self.type_name,
            remote_message=self.message,
            traceback_text=self.traceback,
            node=self.node or None,
        )


@record(frozen=True)
class Outcome:
    """How a call ended, as JSON beside the envelope: read without unpickling.

    Attributes:
        ok: the call returned (``False``: it raised).
        type_name, message, traceback: the exception, when it raised.
        node: where it ran.
        summary: a one-line ``repr`` of the returned value (at most 200 characters).
    """

    ok: bool
    type_name: str = ""
    message: str = ""
    traceback: str = ""
    node: str = ""
    job_id: str | None = None
    summary: str = ""
    version: int = OUTCOME_VERSION

    def to_json(self) -> str:
        return jsontext.dumps_record(self.__dict__) + "\n"

    @classmethod
    def from_json(cls, text: str, *, job_id: str | None = None) -> Outcome:
        """Read an outcome; anything but this version's record is a :class:`ResultError`."""
        try:
            fields = jsontext.loads(text)
            if not isinstance(fields, dict) or fields.get("version") != OUTCOME_VERSION:
                raise ValueError(f"not an outcome record of version {OUTCOME_VERSION}")
            outcome = cls(**fields)
            if not isinstance(outcome.ok, bool) or not all(
                isinstance(getattr(outcome, name), str)
                for name in ("type_name", "message", "traceback", "node", "summary")
            ):
                raise ValueError("a field has the wrong type")
            return outcome
        except (ValueError, TypeError) as exc:
            raise ResultError(
                f"The outcome file of job {job_id} cannot be read ({exc}). It may come from "
                "another slurm-sdk version; use the same version on both sides, or re-run the "
                "job.",
                job_id=job_id,
            ) from exc


def _summary(value: Any) -> str:
    import reprlib  # bounded: a list of ten million numbers is not written out

    short = reprlib.Repr()
    short.maxlist = short.maxtuple = short.maxset = short.maxdict = 10
    short.maxstring = short.maxother = _SUMMARY_WIDTH
    try:
        text = " ".join(short.repr(value).split())
    except Exception as exc:  # a broken __repr__ must not lose the result
        text = f"<{type(value).__qualname__}: repr failed: {type(exc).__name__}>"
    if len(text) <= _SUMMARY_WIDTH:
        return text
    return text[: _SUMMARY_WIDTH - 3] + "..."


def envelope_for_value(value: Any, *, job_id: str | None) -> Envelope:
    """Wrap a return value; an unpicklable value becomes a clear failure envelope."""
    try:
        data = _dumps(value)
    except Exception as exc:
        return Envelope(
            ok=False,
            type_name="slurm.errors.ResultError",
            message=(
                f"the task returned a value of type {type(value).__qualname__} that cannot be "
                f"pickled ({type(exc).__name__}: {exc}); return plain data instead"
            ),
            traceback=_format(exc),
            node=_hostname(),
            job_id=job_id,
            exception=_try_dumps(
                ResultError(
                    f"The task's return value of type {type(value).__qualname__} cannot be "
                    f"pickled: {exc}",
                    job_id=job_id,
                )
            ),
        )
    return Envelope(ok=True, value=data, node=_hostname(), job_id=job_id, summary=_summary(value))


def envelope_for_exception(exc: BaseException, *, job_id: str | None) -> Envelope:
    """Wrap an exception raised by the task."""
    return Envelope(
        ok=False,
        exception=_try_dumps(exc),
        type_name=f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        message=str(exc),
        traceback=_format(exc),
        node=_hostname(),
        job_id=job_id,
    )


def _try_dumps(exc: BaseException) -> bytes | None:
    try:
        data = _dumps(exc)
        pickle.loads(data)  # noqa: S301 (our own bytes: some exceptions pickle but cannot be rebuilt)
        return data
    except Exception:
        return None

"""Bytes that travel between client and job: the call payload and the result envelope.

The payload is a cloudpickle of the task, its arguments and a little metadata.
A :class:`~slurm.job.Job` found anywhere inside the arguments is not pickled:
it travels as a :class:`JobRef` and turns into that job's result on the
compute node (the submitter adds an ``afterok`` dependency on it).

The envelope is what the runner writes when the call ends: the pickled value,
or the exception with its type name, message and traceback text, so the
client can rebuild the exception or, failing that, report it faithfully.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from slurm.errors import ResultError, TaskFailedError


def _hostname() -> str:
    return os.uname().nodename


def _format(exc: BaseException) -> str:
    import traceback  # only on the failure path: keeps the job's start fast

    return "".join(traceback.format_exception(exc))


__all__ = [
    "Envelope",
    "JobRef",
    "dumps_payload",
    "envelope_for_exception",
    "envelope_for_value",
    "loads_payload",
]

ENVELOPE_VERSION = 1


@dataclass(frozen=True)
class JobRef:
    """A pointer to another job's result file, standing in for a ``Job`` argument."""

    job_id: str
    result_path: str


class _RefPickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, refs: list[JobRef]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._refs = refs

    def persistent_id(self, obj: Any) -> Any:
        make_ref = getattr(type(obj), "_slurm_job_ref", None)
        if make_ref is None:
            return None
        ref = make_ref(obj)
        self._refs.append(ref)
        return ("slurm-job", ref.job_id, ref.result_path)


def dumps_payload(payload: dict[str, Any]) -> tuple[bytes, list[JobRef]]:
    """Pickle a payload; return the bytes and the jobs it refers to."""
    buffer = io.BytesIO()
    refs: list[JobRef] = []
    _RefPickler(buffer, refs).dump(payload)
    return buffer.getvalue(), refs


class _RefUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, resolve: Callable[[JobRef], Any]) -> None:
        super().__init__(file)
        self._resolve = resolve

    def persistent_load(self, pid: Any) -> Any:
        kind, job_id, result_path = pid
        if kind != "slurm-job":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        return self._resolve(JobRef(job_id, result_path))


def loads_payload(data: bytes, resolve: Callable[[JobRef], Any]) -> dict[str, Any]:
    """Unpickle a payload, turning each :class:`JobRef` into ``resolve(ref)``."""
    result: dict[str, Any] = _RefUnpickler(io.BytesIO(data), resolve).load()
    return result


@dataclass
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
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = ENVELOPE_VERSION

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.__dict__, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes, *, job_id: str | None = None) -> Envelope:
        try:
            fields = pickle.loads(data)
            return cls(**fields)
        except Exception as exc:
            raise ResultError(
                f"The result file of job {job_id} is unreadable ({exc}). "
                "It may come from an incompatible slurm-sdk version; re-run the job.",
                job_id=job_id,
            ) from exc

    def unwrap(self) -> Any:
        """The value, or raise the remote exception (rebuilt when its type is available)."""
        where = f"job {self.job_id} on {self.node}" if self.node else f"job {self.job_id}"
        if self.ok:
            try:
                return cloudpickle.loads(self.value or b"")
            except Exception as exc:
                raise ResultError(
                    f"The result of {where} could not be unpickled here: "
                    f"{type(exc).__name__}: {exc}. Make the returned type importable on the "
                    "client, or return plain data (dicts, lists, numbers, strings).",
                    job_id=self.job_id,
                ) from exc
        error: BaseException | None = None
        if self.exception is not None:
            try:
                error = cloudpickle.loads(self.exception)
            except Exception:
                error = None
        if isinstance(error, BaseException):
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


def envelope_for_value(value: Any, *, job_id: str | None) -> Envelope:
    """Wrap a return value; an unpicklable value becomes a clear failure envelope."""
    try:
        data = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
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
    return Envelope(ok=True, value=data, node=_hostname(), job_id=job_id)


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
        data = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        cloudpickle.loads(data)  # some exceptions pickle but cannot be rebuilt
        return bytes(data)
    except Exception:
        return None

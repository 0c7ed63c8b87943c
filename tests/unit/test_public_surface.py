"""The public surface: the names ``slurm`` exports, and every import path that users'
code or queued jobs name."""

from __future__ import annotations

import importlib
import pickle

import pytest

import slurm
from slurm._wire.payload import Call, Payload, RunPolicy, loads_payload

PUBLIC = {
    "task",
    "workflow",
    "ArrayJob",
    "Attempt",
    "AuthPrompt",
    "Cluster",
    "CommandError",
    "ConfigurationError",
    "DependencyError",
    "InvalidOptionError",
    "Job",
    "JobContext",
    "JobError",
    "JobState",
    "JobStatus",
    "JobTerminatedError",
    "JobTimeoutError",
    "NotSubmittableError",
    "ResultError",
    "Retry",
    "SlurmError",
    "SubmissionError",
    "Task",
    "TaskFailedError",
    "TransportError",
    "Usage",
    "UsageSummary",
    "WorkflowContext",
    "WorkflowError",
    "as_completed",
    "as_completed_async",
    "current_job_context",
    "on_requeue",
    "requeue_requested",
    "wait",
    # the earlier slurm-sdk's top-level names
    "SlurmTask",
    "BaseCallback",
    "BenchmarkCallback",
    "LoggerCallback",
    "RichLoggerCallback",
    "BackendCommandError",
    "BackendError",
    "BackendTimeout",
    "DownloadError",
    "PackagingError",
    "SlurmfileError",
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(slurm.__all__) == PUBLIC
    assert len(slurm.__all__) == len(PUBLIC)  # no name twice
    for name in slurm.__all__:
        assert getattr(slurm, name) is not None


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("slurm.decorators", ["task", "workflow"]),
        ("slurm.workflow", ["WorkflowContext"]),
        ("slurm.runtime", ["JobContext", "current_job_context", "on_requeue", "requeue_requested"]),
        ("slurm.logging", ["configure_logging"]),
        ("slurm.callbacks.callbacks", ["BaseCallback", "LoggerCallback", "RichLoggerCallback"]),
        (
            "slurm.callbacks",
            [
                "BaseCallback",
                "BenchmarkCallback",
                "DebugCallback",
                "ExecutionLocus",
                "WorkflowCallbackContext",
                "WorkflowTaskSubmitContext",
            ],
        ),
        ("slurm.cluster", ["Cluster"]),
        ("slurm.task", ["Task", "SlurmTask"]),
        ("slurm.runner", ["main"]),
        ("slurm.errors", ["SlurmError", "TaskFailedError", "SlurmfileNotFoundError"]),
        ("slurm.pytest_plugin", []),
        ("slurm.validation", ["validate_partition", "validate_job_id"]),
    ],
)
def test_earlier_import_paths_keep_working(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    for name in names:
        value = getattr(imported, name)
        if hasattr(slurm, name) and name not in ("task", "workflow"):
            assert value is getattr(slurm, name)


def test_the_decorators_are_the_package_attributes() -> None:
    assert slurm.task is importlib.import_module("slurm.decorators").task
    assert callable(slurm.workflow)


def _double(x: int) -> int:
    return 2 * x


def test_a_version_3_payload_queued_before_the_move_still_runs() -> None:
    """Version 3 named the SDK's modules by their flat paths (slurm.payload, slurm.task)."""
    current = pickle.dumps(
        Payload(slurm.Task(_double), Call((21,)), RunPolicy(max_requeues=2), version=3),
        protocol=0,  # text opcodes: module names can be rewritten as an old SDK wrote them
    )
    old = (
        current.replace(b"slurm._wire.payload\n", b"slurm.payload\n")
        .replace(b"slurm._api.task\n", b"slurm.task\n")
        .replace(b"slurm._slurm.retry\n", b"slurm.retry\n")
    )
    assert b"slurm.payload\n" in old and b"slurm.task\n" in old and b"slurm._" not in old
    loaded = loads_payload(old, lambda ref: None)
    assert loaded.version == 3 and loaded.policy.max_requeues == 2
    assert loaded.task.unwrapped(*loaded.call.args) == 42

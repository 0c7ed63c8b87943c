"""At Slurm's time-limit warning the runner requeues a call only when that can help."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from slurm._job.context import requeue_callbacks, requeue_event
from slurm._job.signals import Guard, Interrupted
from slurm._wire.payload import RunPolicy


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    requeue_event.clear()
    requeue_callbacks.clear()
    yield
    requeue_event.clear()
    requeue_callbacks.clear()


def _guard(at_time_limit: bool | None) -> Guard:
    guard = Guard()
    guard.can_requeue = at_time_limit is not False
    guard.needs_checkpoint = at_time_limit is None
    guard.in_task = True
    return guard


def test_without_a_checkpoint_the_call_runs_on_into_its_timeout() -> None:
    guard = _guard(None)
    guard._handle(signal.SIGUSR1, None)
    assert guard.signum is None and requeue_event.is_set()


def test_a_registered_checkpoint_is_saved_and_the_call_requeued() -> None:
    saved: list[str] = []
    requeue_callbacks.append(lambda: saved.append("checkpoint"))
    guard = _guard(None)
    with pytest.raises(Interrupted):
        guard._handle(signal.SIGUSR1, None)
    assert saved == ["checkpoint"]


def test_requeue_on_time_limit_true_requeues_without_a_checkpoint() -> None:
    with pytest.raises(Interrupted):
        _guard(True)._handle(signal.SIGUSR1, None)


def test_a_retry_on_timeout_never_requeues_with_the_same_limit() -> None:
    requeue_callbacks.append(lambda: None)
    guard = _guard(False)
    guard._handle(signal.SIGUSR1, None)
    assert guard.signum is None


def test_the_default_policy_is_only_with_a_checkpoint() -> None:
    assert RunPolicy().requeue_on_time_limit is None

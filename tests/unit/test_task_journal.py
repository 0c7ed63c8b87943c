"""Tasks, options on tasks, contexts and the workflow journal, without Slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

import slurm
from slurm import JobContext, WorkflowContext, task, workflow
from slurm._client.submission import requeue_policy
from slurm._job.context import expand_hostlist
from slurm._job.inject import injected_parameters
from slurm._wire.journal import Journal, JournalEntry
from slurm._wire.payload import RunPolicy
from slurm.errors import ConfigurationError, InvalidOptionError, NotSubmittableError, WorkflowError


def test_public_names() -> None:
    for name in slurm.__all__:
        assert getattr(slurm, name) is not None
    assert slurm.task is task and callable(slurm.workflow)
    from slurm._api.workflow import WorkflowContext as FromModule

    assert FromModule is WorkflowContext


def test_decorator_forms_and_option_validation() -> None:
    @task
    def bare(x: int) -> int:
        return x

    @task(name="nice", memory="1G", cpus_per_task=2)
    def configured() -> None: ...

    assert bare.unwrapped(3) == 3 and bare.options == {}
    assert configured.options == {"job_name": "nice", "mem": "1G", "cpus_per_task": 2}
    with pytest.raises(InvalidOptionError, match="cpus_per_task"):
        task(cpus_pertask=1)
    with pytest.raises(InvalidOptionError):
        bare.with_options(tme="00:01:00")
    assert bare.with_options(partition="gpu").options == {"partition": "gpu"}
    assert bare.options == {}  # with_options never changes the original


def test_calling_without_cluster_explains() -> None:
    @task
    def f() -> None: ...

    with pytest.raises(NotSubmittableError, match=r"f\.unwrapped"):
        f()


def test_bind_check_ignores_injected_parameters() -> None:
    @workflow
    def flow(a: int, ctx: WorkflowContext) -> None: ...

    @task
    def job(b: int, context: JobContext) -> None: ...

    flow.bind_check((1,), {})
    job.bind_check((), {"b": 2})
    with pytest.raises(TypeError, match="nothing was submitted"):
        job.bind_check((1, 2), {})
    assert injected_parameters(flow.unwrapped, workflow=True) == {"ctx": "workflow"}
    assert injected_parameters(job.unwrapped, workflow=False) == {"context": "job"}


def test_the_call_signature_is_read_once_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """A map of 1000 items binds 1000 calls: the signature is read at the first, then kept
    (a copy made by with_options reads it again, once)."""
    import inspect

    read: list[object] = []
    real = inspect.signature

    def counting(fn: object, *args: object, **kwargs: object) -> inspect.Signature:
        read.append(fn)
        return real(fn, *args, **kwargs)  # type: ignore[arg-type]

    @task
    def job(b: int, context: JobContext) -> None: ...

    monkeypatch.setattr(inspect, "signature", counting)
    for b in range(5):
        job.bind_check((b,), {})
    with pytest.raises(TypeError, match="nothing was submitted"):
        job.bind_check((1, 2), {})
    assert job.call_arguments((3,), {}) == [("b", 3)]
    once = len(read)
    assert once <= 2  # the function's own, and injected_parameters' look at it
    job.with_options(partition="gpu").bind_check((1,), {})
    assert len(read) <= 2 * once


class MyJobContext:
    """Not the SDK's JobContext, whatever its name ends with."""


def _optional_job(a: int, context: JobContext | None = None) -> None: ...


def _typing_optional(context: Optional[JobContext]) -> None:  # noqa: UP045
    ...


def _look_alike(context: MyJobContext) -> None: ...


def _unresolvable(context: Missing | JobContext) -> None: ...  # type: ignore[name-defined]  # noqa: F821


def test_contexts_are_injected_by_type_not_by_name() -> None:
    assert injected_parameters(_optional_job, workflow=False) == {"context": "job"}
    assert injected_parameters(_typing_optional, workflow=False) == {"context": "job"}
    assert injected_parameters(_look_alike, workflow=False) == {}
    assert injected_parameters(_unresolvable, workflow=False) == {}


def test_after_accepts_jobs_and_kinds() -> None:
    class J:
        id = "5"

    @task
    def f() -> None: ...

    assert f.after(J()).dependencies[0][0] == "afterok"
    assert f.after_any(J(), None).dependencies[0][0] == "afterany"
    with pytest.raises(ConfigurationError):
        f.after(J(), kind="whenever")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        f.after("not a job")


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("node01", ["node01"]),
        ("node[01-03]", ["node01", "node02", "node03"]),
        ("gpu[1,3-4],cpu7", ["gpu1", "gpu3", "gpu4", "cpu7"]),
        ("node[01-02]-ib,login", ["node01-ib", "node02-ib", "login"]),
        ("rack[1-2]n[7,9]", ["rack1n7", "rack1n9", "rack2n7", "rack2n9"]),
        ("a[1-2", ["a[1-2"]),
        ("", []),
    ],
)
def test_expand_hostlist(text: str, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


def test_job_context_from_environment() -> None:
    ctx = JobContext.from_environment(
        {
            "SLURM_JOB_ID": "1234",
            "SLURM_PROCID": "3",
            "SLURM_LOCALID": "1",
            "SLURM_NTASKS": "8",
            "SLURM_JOB_NODELIST": "n[1-2]",
            "SLURM_RESTART_COUNT": "2",
        }
    )
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.restart_count) == (3, 1, 8, 2)
    assert ctx.hostnames == ("n1", "n2") and ctx.master_addr == "n1"
    env = ctx.torch_distributed_env()
    assert env["RANK"] == "3" and env["WORLD_SIZE"] == "8" and env["MASTER_ADDR"] == "n1"


def testrequeue_policy() -> None:
    flags, policy = requeue_policy({}, {})
    assert flags == {"requeue": True, "signal": "B:USR1@60"} and policy == RunPolicy(
        max_requeues=3, requeue_grace=60
    )
    flags, policy = requeue_policy({}, {"requeue_grace": 120, "max_requeues": 0})
    assert flags["signal"] == "B:USR1@120" and policy == RunPolicy(
        max_requeues=0, requeue_grace=120
    )
    assert requeue_policy({"no_requeue": True}, {}) == ({}, RunPolicy(max_requeues=0))
    assert "signal" not in requeue_policy({"signal": "USR2@30"}, {})[0]
    with pytest.raises(ConfigurationError, match="max_requeues"):
        requeue_policy({}, {"max_requeues": -1})


def test_journal_replays_in_order_and_detects_divergence(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    first = Journal(path)
    for name, digest, job_id in [("train", "a", "10"), ("train", "b", "11"), ("eval", "c", None)]:
        seq, entry = first.claim(name, digest)
        assert entry is None
        first.begin(JournalEntry(seq, name, digest, f"/jobs/{seq}"))
        if job_id:
            first.complete(seq, job_id)
    replay = Journal(path)
    assert replay.claim("train", "a")[1].job_id == "10"  # type: ignore[union-attr]
    assert replay.claim("train", "b")[1].job_id == "11"  # type: ignore[union-attr]
    pending = replay.claim("eval", "c")[1]
    assert pending is not None and pending.job_id is None and pending.job_dir == "/jobs/2"
    assert replay.claim("new", "d") == (3, None)
    diverged = Journal(path)
    with pytest.raises(WorkflowError, match=r"call #1.*train\(\).*different arguments"):
        diverged.claim("train", "changed")


def test_journal_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.begin(JournalEntry(0, "t", "x", "/d"))
    journal.complete(0, "1")
    with path.open("a") as handle:
        handle.write('{"seq": 1, "task": "t", "fing')
    assert Journal(path).claim("t", "x")[1].job_id == "1"  # type: ignore[union-attr]


Ctx = JobContext  # a context under another name: found through the function's globals


def _aliased(context: Ctx) -> None: ...


def _plain(a: int, b: list[int], *rest: str, ctx: int = 0, **more: float) -> int:
    return a


def test_a_function_without_contexts_is_told_so_without_reading_its_signature() -> None:
    from slurm._job.inject import _may_inject

    assert injected_parameters(_aliased, workflow=False) == {"context": "job"}
    assert _may_inject(_aliased, workflow=False)
    assert injected_parameters(_plain, workflow=False) == {}
    assert not _may_inject(_plain, workflow=False)  # the job imports neither inspect nor typing
    assert _may_inject(_plain, workflow=True)  # a workflow's `ctx` is filled in by name
    assert injected_parameters(_plain, workflow=True) == {"ctx": "workflow"}
    for fn in (_optional_job, _typing_optional):
        assert _may_inject(fn, workflow=False)

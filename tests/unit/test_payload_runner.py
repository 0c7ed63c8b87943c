"""Payloads, envelopes and the runner, run in-process without Slurm."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import cloudpickle
import pytest

from slurm._api.task import Task
from slurm._job.entry import run_job
from slurm._wire.payload import (
    PAYLOAD_VERSION,
    Call,
    Envelope,
    JobRef,
    Payload,
    RunPolicy,
    dumps_payload,
    envelope_for_exception,
    envelope_for_value,
    loads_payload,
)
from slurm.errors import ResultError, TaskFailedError


class _FakeJob:
    def __init__(self, job_id: str, path: str) -> None:
        self.id = job_id
        self.path = path

    def __slurm_job_ref__(self) -> JobRef:
        return JobRef((self.id,), result_path=self.path)


def _double(x: int) -> int:
    return 2 * x


def _boom() -> None:
    raise KeyError("missing")


def test_jobs_inside_arguments_travel_as_references() -> None:
    job = _FakeJob("12", "/r/result.pkl")
    payload = Payload(Task(_double), Call(([job], {"nested": job})))
    data, refs = dumps_payload(payload)
    assert refs == [JobRef(("12",), "/r/result.pkl")] * 2
    loaded = loads_payload(data, lambda ref: f"value of {ref.job_id}")
    assert loaded.call.args == (["value of 12"], {"nested": "value of 12"})


def test_payload_of_another_version_is_refused_clearly() -> None:
    old = pickle.dumps({"task": None, "args": (), "kwargs": {}, "items": None})
    with pytest.raises(ResultError, match="another slurm-sdk version"):
        loads_payload(old, lambda ref: None)
    newer = Payload(Task(_double), Call((1,)), version=PAYLOAD_VERSION + 1)
    with pytest.raises(ResultError, match=f"payload version {PAYLOAD_VERSION + 1}"):
        loads_payload(dumps_payload(newer)[0], lambda ref: None)


def test_result_of_another_version_is_refused_clearly() -> None:
    fields = dict(envelope_for_value(1, job_id="8").__dict__, version=1)
    with pytest.raises(ResultError, match="another slurm-sdk version"):
        Envelope.from_bytes(pickle.dumps(fields), job_id="8")


def test_task_that_exited_does_not_stop_the_client() -> None:
    envelope = envelope_for_exception(SystemExit(3), job_id="9")
    with pytest.raises(TaskFailedError, match="SystemExit"):
        envelope.unwrap()


def test_envelope_round_trips_value_and_rebuilds_exception() -> None:
    assert Envelope.from_bytes(envelope_for_value([1, 2], job_id="3").to_bytes()).unwrap() == [
        1,
        2,
    ]
    try:
        _boom()
    except KeyError as exc:
        envelope = envelope_for_exception(exc, job_id="4")
    with pytest.raises(KeyError) as info:
        Envelope.from_bytes(envelope.to_bytes()).unwrap()
    assert "remote traceback (job 4" in info.value.__notes__[0]
    assert "_boom" in info.value.__notes__[0]


def test_exception_that_cannot_be_rebuilt_becomes_task_failed_error() -> None:
    class Local(Exception):
        def __init__(self) -> None:
            super().__init__("with a lock")
            self.lock = threading.Lock()

    envelope = envelope_for_exception(Local(), job_id="5")
    assert envelope.exception is None
    with pytest.raises(TaskFailedError) as info:
        envelope.unwrap()
    assert info.value.type_name.endswith("Local")
    assert info.value.remote_message == "with a lock"
    assert info.value.job_id == "5"


def test_unpicklable_value_is_a_clear_failure() -> None:
    envelope = envelope_for_value(threading.Lock(), job_id="6")
    assert not envelope.ok
    with pytest.raises(ResultError, match="cannot be pickled"):
        envelope.unwrap()


def test_garbage_result_file_is_a_result_error() -> None:
    with pytest.raises(ResultError, match="unreadable"):
        Envelope.from_bytes(b"not a pickle", job_id="7")


def _prepare(job_dir: Path, payload: Payload) -> None:
    job_dir.mkdir()
    data, _ = dumps_payload(payload)
    (job_dir / "payload.pkl").write_bytes(data)
    (job_dir / "sys_path.txt").write_text("")


def test_runner_writes_result_envelope(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    _prepare(job_dir, Payload(Task(_double), Call((21,))))
    assert run_job(job_dir, env={}) == 0
    assert Envelope.from_bytes((job_dir / "result.pkl").read_bytes()).unwrap() == 42
    assert "start restart=0" in (job_dir / "result.runs").read_text()
    # A requeued run of a finished job returns at once and keeps the result.
    assert run_job(job_dir, env={}) == 0
    assert "already-finished" in (job_dir / "result.runs").read_text()


def test_runner_records_failure_and_exits_non_zero(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    _prepare(job_dir, Payload(Task(_boom), Call()))
    assert run_job(job_dir, env={}) == 1
    with pytest.raises(KeyError):
        Envelope.from_bytes((job_dir / "result.pkl").read_bytes()).unwrap()


def test_runner_runs_one_array_element(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    for directory in ("payloads", "results"):
        (job_dir / directory).mkdir()
    (job_dir / "sys_path.txt").write_text("")
    for index in range(3):
        data, _ = dumps_payload(Payload(Task(_double), Call((index + 1,))))
        (job_dir / "payloads" / f"{index}.pkl").write_bytes(data)
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_JOB_ID": "9"}
    assert run_job(job_dir, env=env, array=True) == 0
    envelope = Envelope.from_bytes((job_dir / "results" / "2.pkl").read_bytes())
    assert envelope.unwrap() == 6 and envelope.job_id == "9_2"


def test_a_rank_of_an_array_element_keeps_its_result_apart(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / "payloads").mkdir(parents=True)
    (job_dir / "ranks" / "1").mkdir(parents=True)  # made by run_ranks before srun
    (job_dir / "sys_path.txt").write_text("")
    for index in range(2):
        data, _ = dumps_payload(Payload(Task(_double), Call((index + 1,))))
        (job_dir / "payloads" / f"{index}.pkl").write_bytes(data)
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_JOB_ID": "9", "SLURM_PROCID": "3"}
    assert run_job(job_dir, env=env, array=True, rank=3) == 0
    envelope = Envelope.from_bytes((job_dir / "ranks" / "1" / "3.pkl").read_bytes())
    assert envelope.unwrap() == 4 and envelope.job_id == "9_1"
    assert not (job_dir / "results" / "1.pkl").exists()  # the element's: written by run_ranks


def test_runner_refuses_beyond_max_requeues(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    _prepare(job_dir, Payload(Task(_double), Call((1,)), policy=RunPolicy(max_requeues=1)))
    assert run_job(job_dir, env={"SLURM_RESTART_COUNT": "2"}) == 1
    with pytest.raises(RuntimeError, match="max_requeues=1"):
        Envelope.from_bytes((job_dir / "result.pkl").read_bytes()).unwrap()


def test_task_travels_by_reference_when_importable() -> None:
    from slurm.examples.hello_world import hello

    data = cloudpickle.dumps(hello)
    assert b"slurm.examples.hello_world" in data and len(data) < 600
    again = pickle.loads(data)
    assert again.unwrapped is hello.unwrapped


_RUNNER_MUST_NOT_IMPORT = {
    "cloudpickle",  # only a by-value function or value needs it
    "subprocess",  # only a time-limit requeue runs scontrol
    "socket",
    "logging",
    "click",
    "rich",
    "paramiko",
    "slurm._api.cluster",
    "slurm._client.submission",
    "slurm._client.tracker",
    "slurm._transport",
    "slurm._client.packaging",
    "slurm._api.futures",
}


def test_runner_of_a_by_reference_call_imports_only_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import subprocess
    import sys

    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "floor_tasks.py").write_text(
        "from slurm import task\n\n@task\ndef greet(name):\n    return 'Hello, ' + name\n"
    )
    monkeypatch.syspath_prepend(str(code_dir))
    greet = importlib.import_module("floor_tasks").greet
    job_dir = tmp_path / "job"
    _prepare(job_dir, Payload(greet, Call(("floor",))))
    (job_dir / "sys_path.txt").write_text(f"{code_dir}\n")
    probe = (
        "import sys; from slurm._job.entry import run_job; "
        f"code = run_job({str(job_dir)!r}, env={{}}); "
        "print(code); print('\\n'.join(sorted(sys.modules)))"
    )
    # Without a coverage measurement (make test's), which imports modules of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    code, *modules = done.stdout.split()
    assert code == "0", done.stderr
    unwanted = sorted(
        m
        for m in modules
        if m in _RUNNER_MUST_NOT_IMPORT
        or any(m.startswith(f"{prefix}.") for prefix in _RUNNER_MUST_NOT_IMPORT)
    )
    assert unwanted == []
    assert Envelope.from_bytes((job_dir / "result.pkl").read_bytes()).unwrap() == "Hello, floor"


def test_a_client_on_the_cluster_does_without_ssh() -> None:
    """A local cluster's client (and a workflow's, on a node) never imports paramiko,
    which with its dependencies cost more than the rest of the client's start."""
    import subprocess
    import sys

    probe = (
        "import sys, slurm, slurm._client.submission, slurm._client.tracker, slurm._transport; "
        "c = slurm.Cluster(backend_type='local'); c.transport; c.slurm; c.store; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paramiko', 'invoke')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    from slurm._transport import SSHTransport  # still there, on first use

    assert SSHTransport.kind == "ssh"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, False),
        ({"nodes": 1, "ntasks": "1"}, False),
        ({"nodes": 2}, True),
        ({"nodes": "2-4"}, True),
        ({"nodes": "1-2"}, False),
        ({"ntasks": 4}, True),
        ({"ntasks_per_node": "2"}, True),
        ({"cpus_per_task": 8}, False),
    ],
)
def test_multi_rank_options(options: dict[str, object], expected: bool) -> None:
    from slurm._client.submission import is_multi_rank

    assert is_multi_rank(options) is expected

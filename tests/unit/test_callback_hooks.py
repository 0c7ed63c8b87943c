"""Callbacks against the in-memory Slurm: each hook's firing order and contents, on the
client (from the event stream) and on the "node" (the real runner, in this process,
calling the copy of the callback that travelled in ``callbacks.pkl``)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeslurm import FakeSlurm

from slurm import Cluster, task, workflow
from slurm._wire.callbacks import dumps_callbacks, loads_callbacks
from slurm._wire.layout import JobPaths
from slurm.callbacks import (
    BaseCallback,
    BenchmarkCallback,
    CompletedContext,
    DebugCallback,
    ExecutionLocus,
    JobStatusUpdatedContext,
    LoggerCallback,
    PackagingBeginContext,
    PackagingEndContext,
    RichLoggerCallback,
    RunBeginContext,
    SubmitBeginContext,
    SubmitEndContext,
    WorkflowCallbackContext,
    WorkflowTaskSubmitContext,
)
from slurm.errors import ConfigurationError

HOOKS = [
    "on_begin_package_ctx",
    "on_end_package_ctx",
    "on_begin_submit_job_ctx",
    "on_end_submit_job_ctx",
    "on_job_status_update_ctx",
    "on_begin_run_job_ctx",
    "on_end_run_job_ctx",
    "on_completed_ctx",
    "on_workflow_begin_ctx",
    "on_workflow_end_ctx",
    "on_workflow_task_submitted_ctx",
]


@task(time="00:01:00")
def add(a: int, b: int) -> int:
    return a + b


@task(time="00:01:00")
def boom(message: str) -> None:
    raise ValueError(message)


@workflow(time="00:02:00")
def pipeline(n: int) -> int:
    return n


class Recorder(BaseCallback):
    """Every hook it hears: in ``self.heard`` on the client; as JSON lines in ``log``
    on the node (the copy that travelled)."""

    def __init__(self, log: Path) -> None:
        self.log = str(log)
        self.heard: list[tuple[str, Any]] = []
        self.on_node = False

    def __getstate__(self) -> dict[str, Any]:
        return {"log": self.log, "heard": []}  # what it heard holds clusters: stays home

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.on_node = True

    def _hear(self, hook: str, ctx: Any) -> None:
        if self.on_node:
            fields = {k: v for k, v in vars(ctx).items() if isinstance(v, str | int | float)}
            with open(self.log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"hook": hook, **fields}, default=str) + "\n")
        else:
            self.heard.append((hook, ctx))

    def hooks(self) -> list[str]:
        return [hook for hook, _ in self.heard if hook != "on_job_status_update_ctx"]

    def node(self) -> list[dict[str, Any]]:
        path = Path(self.log)
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def on_submit(self, job: Any) -> None:
        self._hear("on_submit", job)


for _hook in HOOKS:
    setattr(Recorder, _hook, lambda self, ctx, _h=_hook: self._hear(_h, ctx))


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    return FakeSlurm()


@pytest.fixture()
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path / "node.jsonl")


@pytest.fixture()
def cluster(fake: FakeSlurm, tmp_path: Path, recorder: Recorder) -> Iterator[Cluster]:
    with Cluster(
        transport=fake, job_base_dir=str(tmp_path / "jobs"), python="python3", callbacks=[recorder]
    ) as c:
        yield c


def test_a_call_fires_the_client_hooks_in_order_with_their_contents(
    cluster: Cluster, fake: FakeSlurm, recorder: Recorder
) -> None:
    job = add(2, 3)
    assert recorder.hooks() == [
        "on_begin_package_ctx",
        "on_end_package_ctx",
        "on_begin_submit_job_ctx",
        "on_end_submit_job_ctx",
        "on_submit",
    ]
    ctx: dict[str, Any] = dict(recorder.heard)
    begin_package: PackagingBeginContext = ctx["on_begin_package_ctx"]
    assert begin_package.task is add and begin_package.cluster is cluster
    end_package: PackagingEndContext = ctx["on_end_package_ctx"]
    assert end_package.packaging_result == {"python": "python3", "image": None}
    assert end_package.duration is not None and end_package.duration >= 0
    begin: SubmitBeginContext = ctx["on_begin_submit_job_ctx"]
    assert begin.target_job_dir == job.job_dir
    assert begin.pre_submission_id == Path(job.job_dir).name
    assert begin.sbatch_options["job_name"] == "add" and begin.sbatch_options["time"] == "00:01:00"
    assert begin.backend_type == "local"
    end: SubmitEndContext = ctx["on_end_submit_job_ctx"]
    assert (
        end.job is job and end.job_id == job.id and end.pre_submission_id == begin.pre_submission_id
    )
    assert end.sbatch_options == begin.sbatch_options and end.cluster is cluster
    assert ctx["on_submit"] is job

    fake.run_all()
    assert job.get_result(timeout=10) == 5
    # Completion is reported before get_result() returns.
    assert recorder.hooks()[-1] == "on_completed_ctx"
    terminal = [c for h, c in recorder.heard if h == "on_job_status_update_ctx"][-1]
    assert isinstance(terminal, JobStatusUpdatedContext) and terminal.is_terminal
    assert terminal.status["JobState"] == "COMPLETED" and terminal.job is job
    done: CompletedContext = recorder.heard[-1][1]
    assert done.emitted_by is ExecutionLocus.CLIENT and done.job is job
    assert (done.job_id, done.job_state, done.error_type) == (job.id, "COMPLETED", None)
    assert done.stdout_path == job.stdout_path and done.result_path == job.result_path
    assert done.duration is not None and done.duration >= 0


def test_the_node_calls_the_runner_hooks_of_the_copy_that_travelled(
    cluster: Cluster, fake: FakeSlurm, recorder: Recorder
) -> None:
    job = add(1, 1)
    assert Path(JobPaths(job.job_dir).callbacks).exists()
    fake.run_all()
    job.get_result(timeout=10)
    node = recorder.node()
    assert [line["hook"] for line in node] == [
        "on_begin_run_job_ctx",
        "on_end_run_job_ctx",
        "on_completed_ctx",
    ]
    begin, end, done = node
    assert begin["module"] == __name__ and begin["function"] == "add"
    assert begin["job_id"] == job.id and begin["output_file"] == job.result_path
    assert begin["args_file"] == JobPaths(job.job_dir).payload
    assert end["status"] == "success" and end["duration"] >= 0
    assert done["emitted_by"] == "runner" and done["job_state"] == "COMPLETED"
    # ...and none of the node's hooks ran on the client
    assert not {"on_begin_run_job_ctx", "on_end_run_job_ctx"} & set(recorder.hooks())


def test_a_failed_call_is_told_on_both_sides(
    cluster: Cluster, fake: FakeSlurm, recorder: Recorder
) -> None:
    job = boom("no luck")
    fake.run_all()
    with pytest.raises(ValueError, match="no luck"):
        job.get_result(timeout=10)
    end = next(line for line in recorder.node() if line["hook"] == "on_end_run_job_ctx")
    assert end["status"] == "failure" and end["error_type"] == "ValueError"
    assert end["error_message"] == "no luck" and "Traceback" in end["traceback"]
    done: CompletedContext = recorder.heard[-1][1]
    assert done.job_state == "FAILED" and done.error_type == "ValueError"
    assert done.error_message == "no luck"


def test_map_tells_once_per_array_with_the_array_job(
    cluster: Cluster, fake: FakeSlurm, recorder: Recorder
) -> None:
    array = add.map([(1, 2), (3, 4)])
    submitted = [ctx for hook, ctx in recorder.heard if hook == "on_end_submit_job_ctx"]
    assert len(submitted) == 1 and submitted[0].job is array
    assert dict(recorder.heard)["on_submit"] is array
    fake.run_all()
    assert array.get_results(timeout=10) == [3, 7]
    completed = [ctx.job_id for hook, ctx in recorder.heard if hook == "on_completed_ctx"]
    assert sorted(completed) == sorted(job.id for job in array)
    assert len([line for line in recorder.node() if line["hook"] == "on_begin_run_job_ctx"]) == 2


class Raises(BaseCallback):
    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):

            def hook(ctx: Any) -> None:
                raise RuntimeError(f"{name} broke")

            return hook
        return super().__getattribute__(name)

    # a node-side hook of its own, so that it travels
    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        raise RuntimeError("on the node")


def test_a_callback_that_raises_is_warned_about_and_the_job_goes_on(
    fake: FakeSlurm,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with (
        Cluster(transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=[Raises()]),
        caplog.at_level(logging.WARNING, logger="slurm.callbacks"),
    ):
        job = add(2, 2)
        fake.run_all()
        assert job.get_result(timeout=10) == 4
    warned = caplog.text
    for hook in ("on_begin_submit_job_ctx", "on_end_submit_job_ctx", "on_completed_ctx"):
        assert f"callback Raises.{hook} raised RuntimeError: {hook} broke" in warned
    assert "callback Raises.on_submit raised" in warned
    node = capsys.readouterr().err
    assert (
        "callback Raises.on_begin_run_job_ctx raised RuntimeError: on_begin_run_job_ctx broke"
        in node
    )
    assert "callback Raises.on_end_run_job_ctx raised" in node


class Hangs(BaseCallback):
    hook_timeout_secs = 0.2

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def on_begin_submit_job_ctx(self, ctx: SubmitBeginContext) -> None:
        self.calls += 1
        self.release.wait(30)


def test_a_callback_that_hangs_is_left_behind_and_not_called_again(
    fake: FakeSlurm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hangs = Hangs()
    try:
        with Cluster(
            transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=[hangs]
        ):
            with caplog.at_level(logging.WARNING, logger="slurm.callbacks"):
                first, second = add(1, 2), add(3, 4)
            fake.run_all()
            assert (first.get_result(timeout=10), second.get_result(timeout=10)) == (3, 7)
    finally:
        hangs.release.set()
    assert hangs.calls == 1
    assert "callback Hangs.on_begin_submit_job_ctx did not return within 0.2 s" in caplog.text


class Unpicklable(BaseCallback):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.heard: list[str] = []

    def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
        self.heard.append(ctx.job_id)

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        pass


def test_a_callback_that_cannot_be_pickled_stays_home_with_a_warning(
    fake: FakeSlurm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = Unpicklable()
    with Cluster(
        transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=[callback]
    ):
        with caplog.at_level(logging.WARNING, logger="slurm.callbacks"):
            job = add(5, 5)
        fake.run_all()
        assert job.get_result(timeout=10) == 10
    assert "callback Unpicklable cannot be pickled" in caplog.text
    assert "its runner-side hooks will not run on the node" in caplog.text
    assert callback.heard == [job.id]  # its client hooks ran
    assert not Path(JobPaths(job.job_dir).callbacks).exists()


class ClientOnly(BaseCallback):
    def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
        pass


class KeptHome(BaseCallback):
    requires_pickling = False

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        raise AssertionError("never on the node")


class MovedHome(BaseCallback):
    execution_loci = {"on_begin_run_job_ctx": "client"}

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        raise AssertionError("never on the node")


@pytest.mark.parametrize("callback", [ClientOnly(), KeptHome(), MovedHome()])
def test_only_callbacks_with_a_node_side_hook_travel(
    fake: FakeSlurm, tmp_path: Path, callback: BaseCallback
) -> None:
    with Cluster(
        transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=[callback]
    ):
        job = add(1, 0)
        fake.run_all()
        assert job.get_result(timeout=10) == 1
    assert not Path(JobPaths(job.job_dir).callbacks).exists()
    assert not callback.requires_runner_transport()


@pytest.mark.parametrize(
    ("loci", "message"),
    [
        ({"on_begin_run": "client"}, "names 'on_begin_run', which is no hook. The hooks are: "),
        ({"on_completed_ctx": "node"}, "must be one of client, runner, both"),
    ],
)
def test_execution_loci_with_a_typo_is_refused_when_the_cluster_is_made(
    loci: dict[str, str], message: str
) -> None:
    class Wrong(BaseCallback):
        execution_loci = loci

    with pytest.raises(ConfigurationError, match=message):
        Cluster("local", callbacks=[Wrong()])


def test_execution_loci_and_their_defaults() -> None:
    class Moved(BaseCallback):
        execution_loci = {"on_workflow_begin_ctx": "client"}

    moved = Moved()
    assert moved.get_execution_locus("on_workflow_begin_ctx") is ExecutionLocus.CLIENT
    assert moved.should_run_on_client("on_workflow_begin_ctx")
    assert not moved.should_run_on_runner("on_workflow_begin_ctx")
    assert moved.should_run_on_client("on_completed_ctx")
    assert moved.should_run_on_runner("on_completed_ctx")  # both, by default
    assert not moved.should_run_on_client("on_begin_run_job_ctx")
    assert ExecutionLocus("both") is ExecutionLocus.BOTH and ExecutionLocus.RUNNER.value == "runner"


def test_poll_interval_bounds_the_trackers_wait_while_a_callback_listens(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    with Cluster(
        transport=fake,
        job_base_dir=str(tmp_path),
        python="python3",
        callbacks=[LoggerCallback(poll_interval=0.5), BaseCallback()],
    ) as cluster:
        add(1, 1)
        assert cluster.tracker.status_interval == 0.5
        assert BaseCallback().get_poll_interval() is None
        assert LoggerCallback().get_poll_interval() == 2.0


def test_callbacks_added_later_are_heard_too(fake: FakeSlurm, tmp_path: Path) -> None:
    heard: list[str] = []

    class Late(BaseCallback):
        def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
            heard.append(ctx.job_id)

    with Cluster(transport=fake, job_base_dir=str(tmp_path), python="python3") as cluster:
        add(1, 1)
        cluster.callbacks.append(Late())
        job = add(2, 2)
    assert heard == [job.id]


def test_the_shipped_callbacks_run_through_a_job(
    fake: FakeSlurm,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # debugpy itself would listen in this process and patch every subprocess after it.
    listened: list[tuple[str, int]] = []
    debugpy = types.SimpleNamespace(listen=listened.append, wait_for_client=lambda: None)
    monkeypatch.setitem(sys.modules, "debugpy", debugpy)
    screen = io.StringIO()
    from rich.console import Console

    rich = RichLoggerCallback(console=Console(file=screen, width=120), verbose=True)
    benchmark = BenchmarkCallback()
    callbacks = [LoggerCallback(), rich, benchmark, DebugCallback()]
    with (
        caplog.at_level(logging.INFO, logger="slurm.callbacks"),
        Cluster(transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=callbacks),
    ):
        job = add(3, 3)
        fake.run_all()
        assert job.get_result(timeout=10) == 6
    assert f"submitted add as job {job.id}" in caplog.text
    assert f"job {job.id} finished with state=COMPLETED" in caplog.text
    assert "packaging task 'add'" in caplog.text
    assert "submitted[/green] job" not in screen.getvalue()
    assert f"job {job.id} finished: COMPLETED" in screen.getvalue()
    assert {"packaging", "submission", "total"} <= set(benchmark.timings)
    assert listened == [("0.0.0.0", 5678)]  # noqa: S104 (DebugCallback, on the "node")
    assert f":5678 (job {job.id}); attach to" in caplog.text
    # all four travelled (each has a node-side hook), and came back unharmed
    assert Path(JobPaths(job.job_dir).callbacks).exists()


def test_the_callbacks_record_is_versioned_and_each_callback_stands_alone() -> None:
    warnings: list[str] = []
    data = dumps_callbacks([LoggerCallback(), threading.Lock()], warnings.append)
    assert data is not None and "callback lock cannot be pickled" in warnings[0]
    (rebuilt,) = loads_callbacks(data, warnings.append)
    assert isinstance(rebuilt, LoggerCallback)
    import pickle

    other = pickle.dumps({"version": 99, "callbacks": []})
    assert loads_callbacks(other, warnings.append) == []
    assert "has version 99, this runner reads version 1" in warnings[-1]
    assert dumps_callbacks([threading.Lock()], warnings.append) is None


def test_on_submit_alone_still_works(fake: FakeSlurm, tmp_path: Path) -> None:
    seen: list[Any] = []

    class Old:
        def on_submit(self, job: Any) -> None:
            seen.append(job)

    with Cluster(transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=[Old()]):
        job = add(1, 2)
    assert seen == [job]


def _workflow_with_journal(cluster: Cluster, fake: FakeSlurm) -> Any:
    """Submit ``pipeline``, write what its node would have (two tasks, the second a
    workflow that submitted one task of its own), and let it end."""
    job = pipeline(3)
    child = f"{job.job_dir}/tasks/load-20260101-000000-aaaaaa"
    inner = f"{job.job_dir}/tasks/inner-20260101-000001-bbbbbb"
    leaf = f"{inner}/tasks/leaf-20260101-000002-cccccc"
    for directory in (child, inner, leaf):
        Path(directory).mkdir(parents=True)

    def journal(path: str, entries: list[tuple[str, str, str]]) -> None:
        lines = [
            json.dumps({"seq": i, "task": t, "fingerprint": "x", "job_dir": d, "job_id": j})
            for i, (t, d, j) in enumerate(entries)
        ]
        Path(path).write_text("\n".join(lines) + "\n")

    journal(JobPaths(job.job_dir).journal, [("load", child, "901"), ("inner", inner, "902")])
    journal(JobPaths(inner).journal, [("leaf", leaf, "903")])
    key = next(iter(fake.jobs))
    fake.jobs[key].state = "RUNNING"
    cluster.tracker.refresh([job])
    fake.finish(key, "COMPLETED")
    job.wait_final(timeout=10)
    return job


def test_a_workflow_on_the_client_begins_reports_its_tasks_from_its_journal_and_ends(
    cluster: Cluster, fake: FakeSlurm, recorder: Recorder
) -> None:
    class Everywhere(Recorder):
        execution_loci = {h: "client" for h in HOOKS}

    watcher = Everywhere(Path(recorder.log))
    cluster.callbacks[:] = [watcher]
    job = _workflow_with_journal(cluster, fake)
    leaf = f"{job.job_dir}/tasks/inner-20260101-000001-bbbbbb/tasks/leaf-20260101-000002-cccccc"
    hooks = watcher.hooks()
    assert hooks[hooks.index("on_workflow_begin_ctx") :] == [
        "on_workflow_begin_ctx",
        "on_workflow_task_submitted_ctx",
        "on_workflow_task_submitted_ctx",
        "on_workflow_task_submitted_ctx",
        "on_workflow_end_ctx",
        "on_completed_ctx",
    ]
    submitted: SubmitEndContext = dict(watcher.heard)["on_end_submit_job_ctx"]
    assert submitted.task is pipeline
    begun: WorkflowCallbackContext = dict(watcher.heard)["on_workflow_begin_ctx"]
    assert (begun.workflow_job_id, begun.workflow_name) == (job.id, "pipeline")
    assert str(begun.workflow_job_dir) == job.job_dir and begun.cluster is cluster
    told: list[WorkflowTaskSubmitContext] = [
        c for h, c in watcher.heard if h == "on_workflow_task_submitted_ctx"
    ]
    assert [(c.parent_workflow_id, c.child_job_id, c.child_task_name) for c in told] == [
        (job.id, "901", "load"),
        (job.id, "902", "inner"),
        ("902", "903", "leaf"),
    ]
    assert [c.child_is_workflow for c in told] == [False, True, False]
    assert told[2].parent_workflow_name == "inner" and str(told[2].child_job_dir) == leaf


def test_the_workflow_graph_example_draws_the_graph_from_the_events(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    from slurm.examples.workflow_graph import WorkflowGraphCallback

    graph = WorkflowGraphCallback()
    cluster.callbacks[:] = [graph]
    job = _workflow_with_journal(cluster, fake)
    assert graph.order == [job.id, "901", "902", "903"] and graph.roots() == [job.id]
    assert graph.graph[job.id]["children"] == ["901", "902"]
    assert graph.graph["902"] == {
        "name": "inner",
        "type": "workflow",
        "children": ["903"],
        "parent": job.id,
        "state": None,
    }
    assert graph.graph[job.id]["state"] == "COMPLETED"
    dot = graph.export_dot()
    assert f'"{job.id}" -> "901";' in dot and '"902" -> "903";' in dot
    assert '"903" [label="leaf\\n903" shape=ellipse' in dot
    assert json.loads(graph.export_json())["submission_order"] == graph.order


def test_on_the_node_a_hook_that_exits_or_hangs_never_stops_the_rest() -> None:
    from slurm._job.hooks import RunnerHooks

    release = threading.Event()
    heard: list[str] = []

    class Exits:
        def on_begin_run_job_ctx(self, ctx: Any) -> None:
            raise SystemExit(3)

    class HangsOnce:
        hook_timeout_secs = 0.1

        def on_begin_run_job_ctx(self, ctx: Any) -> None:
            release.wait(30)

        def on_end_run_job_ctx(self, ctx: Any) -> None:
            heard.append("hangs: end")  # never: it hung before

    class Listens:
        def on_end_run_job_ctx(self, ctx: Any) -> None:
            heard.append(f"listens: {ctx.status}")

    warned: list[str] = []
    hooks = RunnerHooks([Exits(), HangsOnce(), Listens()], warned.append)
    try:
        from slurm._job.context import JobContext
        from slurm._wire.payload import Outcome

        begun = hooks.begin(
            module="m",
            function="f",
            payload="p",
            output="o",
            job_id="7",
            job_dir="/d",
            job_context=JobContext.from_environment({}, output_dir="/d"),
        )
        hooks.end(begun, Outcome(ok=True), stdout="/d/stdout", stderr="/d/stderr")
    finally:
        release.set()
    assert (
        warned[0] == "callback Exits.on_begin_run_job_ctx raised SystemExit: 3; going on without it"
    )
    assert warned[1].startswith(
        "callback HangsOnce.on_begin_run_job_ctx did not return within 0.1 s"
    )
    assert heard == ["listens: success"]


def test_a_completion_hook_may_wait_for_the_job_it_is_told_about(
    fake: FakeSlurm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[Any] = []

    class Fetches(BaseCallback):
        hook_timeout_secs = 5.0
        # Kept home: in this process the "node" would rebuild the local class over it.
        execution_loci = {"on_completed_ctx": "client"}

        def on_completed_ctx(self, ctx: CompletedContext) -> None:
            got.append(ctx.job.get_result(timeout=2))

    with Cluster(
        transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=[Fetches()]
    ):
        job = add(20, 22)
        fake.run_all()
        assert job.get_result(timeout=10) == 42
    assert got == [42], caplog.text


def test_the_end_is_told_after_the_cluster_object_is_dropped(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    ended: list[str] = []

    class Ends(BaseCallback):
        execution_loci = {"on_completed_ctx": "client"}

        def on_completed_ctx(self, ctx: CompletedContext) -> None:
            ended.append(str(ctx.job_id))

    job = Cluster(
        transport=fake, job_base_dir=str(tmp_path), python="python3", callbacks=[Ends()]
    ).submit(add)(1, 2)
    fake.run_all()
    assert job.get_result(timeout=10) == 3
    assert ended == [job.id]
    job.session.close()

"""The earlier slurm-sdk's names that are small: its error names as parts of our error
tree, and ``configure_logging(level, use_rich=)``, used the way its docs show."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeslurm import FakeSlurm

from slurm import Cluster, task
from slurm._client.config import find_slurmfile, load_environment
from slurm._transport.local import LocalTransport
from slurm.errors import (
    BackendCommandError,
    BackendError,
    BackendTimeout,
    CommandError,
    ConfigurationError,
    DownloadError,
    PackagingError,
    ResultError,
    SlurmError,
    SlurmfileEnvironmentNotFoundError,
    SlurmfileError,
    SlurmfileInvalidError,
    SlurmfileNotFoundError,
    SubmissionError,
    TransportError,
)
from slurm.logging import configure_logging


def test_the_earlier_error_names_are_parts_of_the_tree() -> None:
    assert issubclass(BackendError, SlurmError)
    assert issubclass(CommandError, BackendError) and issubclass(TransportError, BackendError)
    assert BackendCommandError is CommandError and issubclass(SubmissionError, BackendError)
    assert issubclass(BackendTimeout, CommandError)
    # not an OSError (TimeoutError is one): a command that may have run is no file error
    assert not issubclass(BackendTimeout, OSError)
    assert DownloadError is ResultError
    assert issubclass(PackagingError, ConfigurationError)
    for error in (SlurmfileNotFoundError, SlurmfileInvalidError, SlurmfileEnvironmentNotFoundError):
        assert issubclass(error, SlurmfileError) and issubclass(error, ConfigurationError)


def test_a_command_past_its_timeout_is_a_backend_timeout() -> None:
    with pytest.raises(BackendTimeout, match=r"timed out after 0\.2 s") as info:
        LocalTransport().run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert info.value.returncode is None


@pytest.fixture()
def slurmfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("SLURMFILE", raising=False)
    monkeypatch.delenv("SLURM_ENV", raising=False)
    path = tmp_path / "Slurmfile.toml"
    path.write_text('[default]\nbackend = "local"\n')
    path.chmod(0o600)
    yield path


def test_slurmfile_errors_say_which(slurmfile: Path, tmp_path: Path) -> None:
    with pytest.raises(SlurmfileNotFoundError, match="does not exist"):
        find_slurmfile(tmp_path / "missing.toml")
    with pytest.raises(SlurmfileEnvironmentNotFoundError, match=r"no environment \[gpu\]"):
        load_environment(slurmfile, "gpu")
    slurmfile.write_text("[default\n")
    with pytest.raises(SlurmfileInvalidError, match="Cannot read Slurmfile"):
        load_environment(slurmfile)
    slurmfile.write_text('[default]\nhostnme = "x"\n')
    with pytest.raises(SlurmfileInvalidError, match="did you mean 'hostname'"):
        Cluster.from_env(path=str(slurmfile))


@task(time="00:01:00", packaging="container")
def in_an_image() -> int:
    return 1


def test_code_that_cannot_be_prepared_is_a_packaging_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    fake = FakeSlurm()
    with (
        Cluster(transport=fake, job_base_dir=str(tmp_path), python="python3"),
        pytest.raises(PackagingError, match="needs the registry") as info,
    ):
        in_an_image()
    assert isinstance(info.value.__cause__, ConfigurationError)
    assert fake.calls("sbatch") == 0


@task(time="00:01:00")
def square(x: int) -> int:
    return x * x


def test_array_job_get_results_dir_holds_the_elements_results(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    fake = FakeSlurm()
    with Cluster(transport=fake, job_base_dir=str(tmp_path), python="python3"):
        array = square.map([1, 2, 3])
        fake.run_all()
        assert array.get_results(timeout=10) == [1, 4, 9]
    results = array.get_results_dir()
    assert isinstance(results, Path) and results.parent == Path(array.job_dir)
    assert sorted(p.name for p in results.glob("*.pkl")) == ["0.pkl", "1.pkl", "2.pkl"]
    assert array.results_dirs == [str(results)]


def test_the_earlier_top_level_names_import_as_its_docs_show() -> None:
    from slurm import (
        BackendCommandError,
        BaseCallback,
        BenchmarkCallback,
        LoggerCallback,
        RichLoggerCallback,
        SlurmfileError,
        SlurmTask,
        Task,
    )
    from slurm.task import SlurmTask as FromTheModule

    assert SlurmTask is Task is FromTheModule and isinstance(in_an_image, SlurmTask)
    assert BackendCommandError is CommandError and issubclass(SlurmfileError, SlurmError)
    assert issubclass(LoggerCallback, BaseCallback) and issubclass(
        RichLoggerCallback, LoggerCallback
    )
    assert BenchmarkCallback().get_all_workflow_metrics() == {}


def test_configure_logging_takes_the_earlier_use_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    configure_logging(logging.DEBUG, use_rich=False)
    (handler,) = root.handlers
    assert type(handler) is logging.StreamHandler and root.level == logging.DEBUG
    configure_logging(level=logging.INFO, use_rich=False)  # again: no second handler
    assert len(root.handlers) == 1


def test_workflow_context_helpers_find_the_workflows_own_tasks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from slurm import WorkflowContext
    from slurm._wire.journal import Journal

    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    fake = FakeSlurm()
    workflow_dir = tmp_path / "flow-20260101-000000-abcdef"
    (workflow_dir / "shared").mkdir(parents=True)
    with Cluster(
        transport=fake, job_base_dir=str(workflow_dir / "tasks"), python="python3"
    ) as cluster:
        cluster.session.journal = Journal(workflow_dir / "journal.jsonl")  # as on the node
        ctx = WorkflowContext(cluster, "1", workflow_dir, workflow_dir / "shared")
        first, second = square(2), square(3)
        fake.run_all()
        assert second.get_result(timeout=10) == 9
        assert ctx.list_task_runs("square") == [Path(second.job_dir), Path(first.job_dir)]
        assert ctx.list_task_runs("nothing") == []
        assert ctx.get_latest_task_result("square") == 9
        assert ctx.load_workflow_result(first.job_dir) == 4
        with pytest.raises(FileNotFoundError, match="No run of task 'cube'"):
            ctx.get_latest_task_result("cube")
        with pytest.raises(FileNotFoundError, match="has no result"):
            ctx.load_workflow_result(str(workflow_dir))
    assert ctx.tasks_dir == workflow_dir / "tasks" == ctx.get_task_output_dir("square")
    assert ctx.result_path == workflow_dir / "result.pkl" and not ctx.local_mode
    assert ctx.metadata_path == workflow_dir / "result.json"


def test_a_slurmfile_names_its_callbacks(slurmfile: Path) -> None:
    from slurm.callbacks import DebugCallback, LoggerCallback

    slurmfile.write_text(
        '[default]\nbackend = "local"\n'
        'callbacks = ["slurm.callbacks:LoggerCallback", '
        '{ target = "slurm.callbacks.debug.DebugCallback", kwargs = { port = 6000 } }]\n'
    )
    logger, debug = Cluster.from_env(path=str(slurmfile)).callbacks
    assert isinstance(logger, LoggerCallback) and isinstance(debug, DebugCallback)
    assert debug.port == 6000
    mine = LoggerCallback()
    assert Cluster.from_env(path=str(slurmfile), callbacks=[mine]).callbacks == [mine]
    slurmfile.write_text('[default]\ncallbacks = ["nowhere:Nothing"]\n')
    with pytest.raises(SlurmfileInvalidError, match="cannot import callback 'nowhere:Nothing'"):
        Cluster.from_env(path=str(slurmfile))
    slurmfile.write_text("[default]\ncallbacks = [3]\n")
    with pytest.raises(SlurmfileInvalidError, match="each callback is a 'module:Class' string"):
        Cluster.from_env(path=str(slurmfile))
    slurmfile.write_text('[default]\ncallbacks = ["slurm.errors:SlurmError"]\n')
    with pytest.raises(SlurmfileInvalidError, match="none of the callback hooks"):
        Cluster.from_env(path=str(slurmfile))


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        ("validate_account", " ml-team ", "ml-team"),
        ("validate_account", None, None),
        ("validate_partition", "gpu.a100", "gpu.a100"),
        ("validate_job_name", "train/epoch:3", "train/epoch:3"),
        ("validate_job_id", "123", "123"),
        ("validate_job_id", "123_4", "123_4"),
        ("validate_job_id", "123_[0-9%2]", "123_[0-9%2]"),
        ("validate_environment_variable_name", "_DATA_DIR2", "_DATA_DIR2"),
    ],
)
def test_validation_accepts_what_slurm_takes(check: str, value: str, expected: str) -> None:
    import slurm.validation

    assert getattr(slurm.validation, check)(value) == expected


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        ("validate_partition", "gpu; rm -rf ~", r"characters Slurm names cannot hold \(' ;~'\)"),
        ("validate_account", "", "Account is empty"),
        ("validate_job_name", "x" * 1025, "more than the 1024 Slurm takes"),
        ("validate_job_id", "12a", "is not a Slurm job id"),
        ("validate_environment_variable_name", "2X", "cannot name an environment variable"),
    ],
)
def test_validation_refuses_with_the_field_and_what_to_do(
    check: str, value: str, message: str
) -> None:
    import slurm.validation

    with pytest.raises(ValueError, match=message) as info:
        getattr(slurm.validation, check)(value)
    assert isinstance(info.value, ConfigurationError)
    assert slurm.validation.validate_slurm_identifier("a.b", "QOS") == "a.b"

"""``WorkflowContext``: what a running workflow gets to orchestrate its tasks."""

from __future__ import annotations

from slurm._types import TYPE_CHECKING
from slurm._wire.record import record

if TYPE_CHECKING:
    from typing import Any, ClassVar

if TYPE_CHECKING:  # pathlib too: every job imports this module, few need pathlib
    from pathlib import Path

    from slurm._api.cluster import Cluster

__all__ = ["WorkflowContext"]


@record(frozen=True)
class WorkflowContext:
    """Injected into a workflow's parameter annotated ``WorkflowContext`` (or named ``ctx``).

    Attributes:
        cluster: the cluster tasks are submitted to (from the workflow's node).
        workflow_job_id: the Slurm job id of the workflow itself.
        workflow_job_dir: the workflow job's directory; children live under it.
        shared_dir: a directory for artifacts shared by the workflow's tasks.
        local_mode: True when the workflow runs here rather than as a Slurm job
            (always False for the runner's; kept for the earlier SDK's code).

    The earlier SDK's helpers read the workflow's own tasks: each call's job
    directory is ``tasks_dir / NAME-YYYYmmdd-HHMMSS-ID``, so ``list_task_runs``
    finds a task's runs by name, newest first.
    """

    #: A parameter annotated with this type is filled in by the runner (see slurm._job.inject).
    __slurm_inject__: ClassVar[str] = "workflow"

    cluster: Cluster
    workflow_job_id: str
    workflow_job_dir: Path
    shared_dir: Path
    local_mode: bool = False

    @property
    def result_path(self) -> Path:
        """Where this workflow's result will be (``result.pkl``)."""
        return self.workflow_job_dir / "result.pkl"

    @property
    def metadata_path(self) -> Path:
        """This workflow's outcome record (``result.json``: how it ended, no pickle)."""
        return self.workflow_job_dir / "result.json"

    @property
    def tasks_dir(self) -> Path:
        """The directory of the job directories of the tasks this workflow submits."""
        return self.workflow_job_dir / "tasks"

    def get_task_output_dir(self, task_name: str) -> Path:
        """The directory holding the runs of ``task_name`` (every task's runs live side by
        side in :attr:`tasks_dir`; :meth:`list_task_runs` picks one task's)."""
        del task_name
        return self.tasks_dir

    def list_task_runs(self, task_name: str) -> list[Path]:
        """The job directories of this workflow's calls of ``task_name``, newest first
        (in the order of its journal; by the time in their names without one)."""
        from pathlib import Path

        from slurm._client.store import parse_job_dir
        from slurm._wire.journal import read_entries
        from slurm._wire.layout import JobPaths

        journal = Path(JobPaths(str(self.workflow_job_dir)).journal)
        if journal.is_file():
            entries = read_entries(journal.read_text(encoding="utf-8"))
            return [Path(e.job_dir) for e in reversed(entries) if e.task == task_name and e.job_dir]
        if not self.tasks_dir.is_dir():
            return []
        runs = []
        for path in self.tasks_dir.iterdir():
            name, when = parse_job_dir(str(path))
            if path.is_dir() and when is not None and name == task_name:
                runs.append((when, path.name, path))
        return [path for _, _, path in sorted(runs, reverse=True)]

    def get_latest_task_result(self, task_name: str) -> Any:
        """The value the newest call of ``task_name`` returned (or raise its exception).

        Raises:
            FileNotFoundError: no call of that task here, or it has no result yet.
        """
        runs = self.list_task_runs(task_name)
        if not runs:
            raise FileNotFoundError(
                f"No run of task {task_name!r} under {self.tasks_dir}: it has not been called "
                "by this workflow yet, or the name is misspelled (a task's name is its "
                "function's)."
            )
        return _load_result(self.cluster, runs[0], f"the newest run of task {task_name!r}")

    def load_workflow_result(self, workflow_path: str | Path) -> Any:
        """The value another workflow (its job directory ``workflow_path``) returned.

        Raises:
            FileNotFoundError: it has no result (not finished, failed to start, wrong path).
        """
        from pathlib import Path

        return _load_result(self.cluster, Path(workflow_path), "the workflow")


def _load_result(cluster: Cluster, job_dir: Path, what: str) -> Any:
    """A result envelope's value, unpickled only from a file only this user can have
    written (the cluster's trust check, as ``Job.get_result``)."""
    from slurm._wire.layout import JobPaths
    from slurm._wire.payload import Envelope

    path = JobPaths(str(job_dir)).result
    try:
        cluster.store.check_private(path)
        data = cluster.transport.read_bytes(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{what} has no result at {path}: it has not finished (or ended without one; "
            f"see {job_dir}/stderr)."
        ) from None
    return Envelope.from_bytes(data).unwrap()

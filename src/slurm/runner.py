"""``python -P -m slurm.runner JOB_DIR [--array] [--ranks | --rank]``: the job-side entry
point every batch script calls (queued scripts of earlier versions too).

The job side is :mod:`slurm._job`; this module starts it with the host that
makes a workflow's cluster, imported only when a workflow runs (a task's job
never loads the client).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from slurm._job import entry
from slurm._wire.payload import WorkflowSpec

__all__ = ["main", "run_job", "run_ranks"]


class _LazyHost:
    def open(self, spec: WorkflowSpec, job_dir: Path, job_id: str) -> tuple[Any, Any]:
        from slurm._api.jobhost import ClusterHost

        return ClusterHost().open(spec, job_dir, job_id)


def main(argv: list[str] | None = None) -> int:
    """Run the call of ``JOB_DIR``; the process exit code."""
    return entry.main(argv, host=_LazyHost())


def run_job(job_dir: str | Path, env: dict[str, str] | None = None, **kwargs: Any) -> int:
    """:func:`slurm._job.entry.run_job` with the workflow host (for tests and tools)."""
    return entry.run_job(job_dir, env, host=_LazyHost(), **kwargs)


run_ranks = entry.run_ranks

if __name__ == "__main__":
    sys.exit(main())

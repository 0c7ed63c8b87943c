"""``python -P -m slurm.runner JOB_DIR [--array] [--ranks | --rank]``: the job-side entry
point every batch script calls (queued scripts of earlier versions too).

The job side is :mod:`slurm._job`; this module starts it with the host that
makes a workflow's cluster, imported only when a workflow runs (a task's job
never loads the client).
"""

from __future__ import annotations

import sys

from slurm._job import entry
from slurm._types import TYPE_CHECKING
from slurm._wire.payload import WorkflowSpec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

__all__ = ["main", "run_job", "run_ranks"]


class _LazyHost:
    def open(
        self, spec: WorkflowSpec, job_dir: Path, job_id: str, callbacks: Sequence[Any] = ()
    ) -> tuple[Any, Any]:
        from slurm._api.jobhost import ClusterHost

        return ClusterHost().open(spec, job_dir, job_id, callbacks)


def _trust_problem(path: str) -> str | None:
    """Why a pool's worker may not read ``path`` (the trust check of
    :mod:`slurm._transport.trust`: a directory and its parents, or a file), or None."""
    import os
    import stat

    from slurm._transport import trust

    if os.path.isdir(path):
        problems = trust.parse_output(trust.local_report([path]), [path])
        return problems[0].detail if problems else None
    st = os.stat(path)
    problem = trust.file_problem(path, st.st_uid, stat.S_IMODE(st.st_mode), os.getuid())
    return problem.detail if problem else None


def main(argv: list[str] | None = None) -> int:
    """Run the call of ``JOB_DIR`` (or, with ``--pool POOL_DIR``, a pool's worker); the
    process exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--pool"]:
        from slurm._job import worker

        return worker.main(args, host=_LazyHost(), trusted=_trust_problem)
    return entry.main(argv, host=_LazyHost())


def run_job(job_dir: str | Path, env: dict[str, str] | None = None, **kwargs: Any) -> int:
    """:func:`slurm._job.entry.run_job` with the workflow host (for tests and tools)."""
    return entry.run_job(job_dir, env, host=_LazyHost(), **kwargs)


run_ranks = entry.run_ranks

if __name__ == "__main__":
    sys.exit(main())

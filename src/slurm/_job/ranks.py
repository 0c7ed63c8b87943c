"""A task of several ranks: the batch step starts one runner per rank with ``srun``
and writes the job's result from theirs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from slurm._job.context import expand_hostlist
from slurm._job.outputs import atomic_write, drop_marker, log_run, previous_starts
from slurm._job.runcall import element
from slurm._wire import record
from slurm._wire.env import DONE_DIR_VARIABLE
from slurm._wire.layout import JobPaths
from slurm._wire.payload import Envelope

__all__ = ["run_ranks"]


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def run_ranks(
    job_dir: str | Path,
    env: dict[str, str] | None = None,
    launch: list[str] | None = None,
    *,
    array: bool = False,
) -> int:
    """The batch step of a multi-rank job: start one runner per rank with ``srun``,
    then write the job's result: rank 0's value, or the first failed rank's error
    (naming the rank and its host). Every rank gets the same ``MASTER_ADDR`` (the
    first node) and a ``MASTER_PORT`` found free on it. ``launch`` replaces this
    interpreter in the ``srun`` line (pyxis flags and the image's python, in a container).
    ``array``: an element of a Slurm array, whose ranks and result are its own.
    """
    import subprocess

    env = dict(os.environ if env is None else env)
    index, job_id = element(env, array)
    paths = JobPaths(str(job_dir), index)
    result_path, runs_path = Path(paths.result), Path(paths.runs)
    restart = max(int(env.get("SLURM_RESTART_COUNT") or 0), previous_starts(runs_path))
    if result_path.exists():  # requeued after it had finished: never run twice
        log_run(runs_path, "already-finished", restart)
        return 0
    world = int(env.get("SLURM_NTASKS") or 1)
    ranks_dir = Path(paths.ranks_dir)
    ranks_dir.parent.mkdir(mode=0o700, exist_ok=True)  # an array's ranks/, beside ranks/i
    ranks_dir.mkdir(mode=0o700, exist_ok=True)
    for stale in ranks_dir.glob("*.pkl"):  # an earlier, interrupted run: all ranks run again
        stale.unlink()
    atomic_write(Path(paths.world_size), f"{world}\n".encode())
    hosts = expand_hostlist(env.get("SLURM_JOB_NODELIST", "")) or [os.uname().nodename]
    env.setdefault("MASTER_ADDR", hosts[0])
    env.setdefault("MASTER_PORT", str(_free_port()))
    log_run(runs_path, "start", restart)
    # -P: each rank's runner, like the batch step's, keeps the working directory off
    # sys.path (in a container the image's Python may predate -P: PYTHONSAFEPATH there).
    argv = ["srun", "--kill-on-bad-exit=0", *(launch or [sys.executable, "-P"]), "-m"]
    argv.append("slurm.runner")
    # argv list, never a shell; srun from the job's own PATH, as Slurm's own tools find it
    mode = ["--array", "--rank"] if array else ["--rank"]
    code = subprocess.run(  # noqa: S603
        [*argv, str(job_dir), *mode], env=env, check=False
    ).returncode
    envelope = _gather(paths, world, code, job_id)
    atomic_write(Path(paths.outcome), envelope.outcome().to_json().encode("utf-8"))
    atomic_write(result_path, envelope.to_bytes())
    log_run(runs_path, "finished" if envelope.ok else "failed", restart)
    drop_marker(env.get(DONE_DIR_VARIABLE), job_id)
    return 0 if envelope.ok else 1


def _gather(paths: JobPaths, world: int, srun_code: int, job_id: str | None) -> Envelope:
    """Rank 0's envelope if every rank succeeded, else the first failure, naming its rank."""
    first: Envelope | None = None
    for rank in range(world):
        try:
            envelope = Envelope.from_bytes(Path(paths.rank_result(rank)).read_bytes())
        except FileNotFoundError:
            return Envelope(
                ok=False,
                type_name="slurm.errors.TaskFailedError",
                message=(
                    f"rank {rank} of {world} ended without a result (srun exited {srun_code}); "
                    "see the job's stderr"
                ),
                job_id=job_id,
            )
        if not envelope.ok:
            return record.replace(envelope, node=f"{envelope.node} (rank {rank} of {world})")
        first = first or envelope
    if first is None:  # world == 0: a multi-rank job has at least two ranks
        raise RuntimeError("no rank left a result")
    return first
